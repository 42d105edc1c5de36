"""Data-parallel training across processes: torchrun's environment, the launcher, synchronised BN.

``torchrun --nproc-per-node N -m resnet train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; ``resnet train
--nproc N`` starts the same thing through :func:`launch`. One process per device; the batch size
given to ``resnet train`` is the global batch, split evenly over the processes.

Failure handling, so a multi-process run stops like a single process does:

- The processes die with the process that started them (:func:`die_with_parent`): a launcher killed
  with SIGKILL leaves no orphans training on and writing checkpoints.
- SIGTERM/SIGINT to the launcher: torchrun forwards the signal, the processes agree to stop at the
  next log step, save a checkpoint and rank 0 prints the one-line resume hint; the launcher itself
  exits quietly with status 130.
- Every collective has a timeout (``--dist-timeout``): a stopped or hung process ends the run with
  one line naming the timeout instead of a silent wait.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from resnet.errors import ResNetError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_env() -> DistInfo:
    """The process's place in a torchrun job (rank 0 of 1 outside torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(info: DistInfo, device: torch.device, timeout_s: float | None = None) -> None:
    """Join the job; ``timeout_s`` bounds every collective (None: PyTorch's default, 30 minutes for gloo)."""
    if info.enabled and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            rank=info.rank,
            world_size=info.world_size,
            timeout=timedelta(seconds=timeout_s) if timeout_s is not None else None,
        )


_TIMEOUT = re.compile(r"timed? ?out|timeout", re.IGNORECASE)


def is_collective_timeout(error: BaseException) -> bool:
    """Whether ``error`` is a collective (or rendezvous) giving up on the other processes.

    gloo raises a plain RuntimeError ("Timed out waiting 300000ms for recv operation to complete");
    the store raises DistStoreError; NCCL's watchdog aborts the process itself, naming its timeout.
    """
    return isinstance(error, RuntimeError) and bool(_TIMEOUT.search(str(error)))


@contextmanager
def timeout_as_error(info: DistInfo, timeout_s: float, note: Callable[[], str] = str) -> Iterator[None]:
    """Turn a collective timeout into one line naming the timeout (a ResNetError) instead of a traceback;
    ``note()`` adds what is left (e.g. the last checkpoint)."""
    try:
        yield
    except RuntimeError as e:
        if not (info.enabled and is_collective_timeout(e)):
            raise
        left = note()
        raise ResNetError(
            f"process {info.rank} of {info.world_size}: no answer from the other processes within "
            f"--dist-timeout {timeout_s:g} s (one of them is stopped, hung or dead); stopped"
            f"{'; ' + left if left else ''}"
        ) from None


# -- dying with the launcher ---------------------------------------------------------------------

LAUNCHER_PID = "RESNET_LAUNCHER_PID"  # set by launch(): the process the training processes must not outlive
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die(signum: int | None = None) -> None:
    """End this process now (SIGKILL; os._exit where there is none), or send it ``signum`` and return."""
    if signum is not None:
        os.kill(os.getpid(), signum)
        return
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)  # no SIGKILL (Windows)


def _watch_parent(parent_pid: int, interval_s: float, signum: int | None) -> None:
    while True:
        if os.getppid() != parent_pid:
            _die(signum)
            if signum is not None:
                return  # sent once: the process stops in its own time
        time.sleep(interval_s)


def die_with_parent(
    parent_pid: int, *, use_prctl: bool = True, interval_s: float = 0.5, signum: int | None = None
) -> str:
    """Make this process end (as by SIGKILL) when ``parent_pid``, its parent, ends; returns how.

    With ``signum`` (e.g. SIGTERM) the process is sent that signal instead, once, and ends in its own
    time: a trainer then stops at its next step and saves its checkpoint.

    On Linux the kernel does it (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, through ctypes): immediate, and
    even a process stopped with SIGSTOP goes. Elsewhere, or if prctl is unavailable, a daemon thread
    polls ``os.getppid()`` every ``interval_s`` seconds. A parent that is already gone (the race
    between being started and getting here) ends the process at once.
    """
    if use_prctl and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL if signum is None else signum), 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
        if ok:
            if os.getppid() != parent_pid:
                _die(signum)
            return "prctl"
    if os.getppid() != parent_pid:
        _die(signum)
        if signum is not None:
            return "already gone"
    threading.Thread(
        target=_watch_parent, args=(parent_pid, interval_s, signum), name="die-with-parent", daemon=True
    ).start()
    return "watchdog"


def bind_to_launcher() -> None:
    """In a process that torchrun (or ``resnet train --nproc``) started: die with that launcher."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        how = die_with_parent(int(os.environ.get(LAUNCHER_PID) or os.getppid()))
        logger.debug("process %s ends with its launcher (%s)", os.environ.get("RANK"), how)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce(t: torch.Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=op)
    return t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _RoutineShutdownFilter(logging.Filter):
    """Drops torchrun's messages about a shutdown it was asked for and about a failed process: the
    processes report the first themselves and :func:`launch` the second, in one line each."""

    ROUTINE = ("Received %s death signal", "Sending process %s closing signal", "failed (exitcode: %s)")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.ROUTINE)


def launch(nproc: int, argv: list[str], stop_grace_s: float = 30) -> int:
    """Run ``python -m resnet <argv>`` in ``nproc`` processes on this machine through torchrun.

    Returns 0, or 130 when a signal (SIGTERM, SIGINT, ...) stopped the run: torchrun forwarded it and
    gave the processes ``stop_grace_s`` seconds to save their checkpoint before killing them.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    args = [
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        "--shutdown-timeout",
        str(max(1, round(stop_grace_s))),
        "-m",
        "resnet",
        *argv,
    ]
    logger.info("launching %d processes: torchrun %s", nproc, " ".join(args))
    os.environ[LAUNCHER_PID] = str(os.getpid())  # inherited by the processes: see bind_to_launcher()
    quiet = _RoutineShutdownFilter()
    elastic_loggers = [
        logging.getLogger(n)
        for n in ("torch.distributed.elastic.agent.server.api", "torch.distributed.elastic.multiprocessing.api")
    ]
    for log in elastic_loggers:
        log.addFilter(quiet)
    try:
        torchrun(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        how = (
            f"was killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exited with status {failure.exitcode}"
        )
        raise ResNetError(
            f"training process {rank} of {nproc} {how}; the run is stopped (see its messages above)"
        ) from None
    except SignalException:
        return 130  # the processes saved a checkpoint and rank 0 printed how to resume
    finally:
        os.environ.pop(LAUNCHER_PID, None)
        for log in elastic_loggers:
            log.removeFilter(quiet)
    return 0


class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over all processes, differentiable: the gradient of every process's input is
    the sum of the gradients of every process's output (each output depends on each input with weight 1).
    PyTorch's ``torch.distributed.nn.functional.all_reduce`` does the same but is deprecated."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        total = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return _SumOverProcesses.apply(grad)


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of all processes.

    PyTorch's own ``nn.SyncBatchNorm`` runs only on GPUs; this one works on any device (gloo on CPU).
    Mean and variance are computed in two passes over the global batch through differentiable
    all-reduces, so gradients flow across processes exactly as in one big batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        count = all_reduce(count.clone())
        mean = _SumOverProcesses.apply(x.sum(dims)) / count
        centred = x - mean[None, :, None, None]
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                # track_running_stats: BatchNorm registered the three buffers
                assert self.num_batches_tracked is not None
                assert self.running_mean is not None and self.running_var is not None
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * count / (count - 1), m)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None] if self.affine else y


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """PyTorch's SyncBatchNorm on GPUs, :class:`GlooSyncBatchNorm` elsewhere; state dict keys unchanged."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            sync = GlooSyncBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            ).to(device)
            sync.load_state_dict(child.state_dict())
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model
