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
  one line naming the timeout instead of a silent wait; a dead peer (its connection reset) ends it
  with one line too, never gloo's traceback (:class:`PeerFailure`).
- Under :func:`launch` the processes hand their one-line error to the launcher through torchrun's
  error file (``TORCHELASTIC_ERROR_FILE``) instead of printing it, and the launcher prints one line
  for the run: the process that died or failed first, and why (:func:`root_cause`). Under a plain
  ``torchrun`` each process prints its own line and the error file feeds torchrun's own report.
- A worker group that torchrun restarts (``--max-restarts``; ``TORCHELASTIC_RESTART_COUNT`` > 0)
  continues the run from its last checkpoint: see :func:`resnet.train.trainer.train`.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

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
    """Join the job; ``timeout_s`` bounds every collective (None: PyTorch's default, 30 minutes for gloo).

    A worker group that torchrun restarted meets in the store of the first one (its agent keeps it):
    the processes' addresses of the attempt before are still there, and a process that read its peer's
    old address would wait on a dead port ("Connection refused"). Each attempt gets keys of its own.
    """
    if not info.enabled or dist.is_initialized():
        return
    timeout = timedelta(seconds=timeout_s) if timeout_s is not None else None
    backend = "nccl" if device.type == "cuda" else "gloo"
    restart = restart_count()
    if restart and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            info.world_size,
            is_master=False,
            timeout=timeout or timedelta(minutes=30),
        )
        dist.init_process_group(
            backend,
            store=dist.PrefixStore(f"resnet/attempt_{restart}", store),
            rank=info.rank,
            world_size=info.world_size,
            timeout=timeout,
        )
        return
    dist.init_process_group(backend, rank=info.rank, world_size=info.world_size, timeout=timeout)


_TIMEOUT = re.compile(r"timed? ?out|timeout", re.IGNORECASE)
# gloo's words for a peer whose process is gone: "Connection reset by peer", "Connection closed by peer",
# "Broken pipe" (a write to it), "Connection refused" (a reconnect to it).
_PEER_LOST = re.compile(r"connection (?:reset|closed|refused)|broken pipe|socket closed", re.IGNORECASE)


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (``--max-restarts``); 0 outside torchrun."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def is_collective_timeout(error: BaseException) -> bool:
    """Whether ``error`` is a collective (or rendezvous) giving up on the other processes.

    gloo raises a plain RuntimeError ("Timed out waiting 300000ms for recv operation to complete");
    the store raises DistStoreError; NCCL's watchdog aborts the process itself, naming its timeout.
    """
    return isinstance(error, RuntimeError) and bool(_TIMEOUT.search(str(error)))


def is_peer_lost(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another process died (its socket closed)."""
    return isinstance(error, RuntimeError) and bool(_PEER_LOST.search(str(error)))


class PeerFailure(ResNetError):
    """This process stops because another one stopped answering (``timed_out``) or died: an effect.

    ``note`` says where the last good checkpoint is (or that none was saved)."""

    def __init__(self, message: str, note: str = "", timed_out: bool = False) -> None:
        super().__init__(message)
        self.note, self.timed_out = note, timed_out


@contextmanager
def timeout_as_error(info: DistInfo, timeout_s: float, note: Callable[[], str] = str) -> Iterator[None]:
    """Turn a collective timeout or a dead peer into one line (a :class:`PeerFailure`) instead of a
    traceback; ``note()`` adds what is left (e.g. the last checkpoint)."""
    try:
        yield
    except RuntimeError as e:
        if not info.enabled or not (is_collective_timeout(e) or is_peer_lost(e)):
            raise
        left = note()
        timed_out = is_collective_timeout(e)
        if timed_out:
            what = (
                f"no answer from the other processes within --dist-timeout {timeout_s:g} s "
                f"(one of them is stopped, hung or dead)"
            )
        else:
            what = "another process died (its connection was closed)"
        raise PeerFailure(
            f"process {info.rank} of {info.world_size}: {what}; stopped{'; ' + left if left else ''}", left, timed_out
        ) from None


# -- one line per failed run ----------------------------------------------------------------------

_ERROR_KIND = "resnet"  # the key of this package's part of a torchrun error file


def hand_to_launcher(error: ResNetError) -> bool:
    """Write ``error`` (one line) into torchrun's error file for this process, if torchrun gave one.

    Returns whether the launcher of :func:`launch` started this process: it then prints the run's one
    line itself, and this process prints nothing. Under a plain torchrun the process prints its own
    line (returns False) and torchrun's failure report shows the message from the file.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    line = " ".join(str(error).split())
    if path:
        data = {
            "message": {
                "message": f"resnet: error: {line}",
                "extraInfo": {"py_callstack": "", "timestamp": str(int(time.time()))},
            },
            _ERROR_KIND: {
                "line": line,
                # an effect of another process: "timeout" (it stopped answering) or "lost" (it died)
                "peer": ("timeout" if error.timed_out else "lost") if isinstance(error, PeerFailure) else "",
                "note": error.note if isinstance(error, PeerFailure) else "",
            },
        }
        try:
            with open(path, "w") as f:
                json.dump(data, f)
        except OSError:
            return False  # no file the launcher could read: print the line here
    return bool(path) and LAUNCHER_PID in os.environ


@dataclass(frozen=True)
class Failure:
    """What torchrun knows of one failed process: its exit status (-N: killed by signal N) and what it
    wrote into its error file (``{}`` if nothing)."""

    rank: int
    exitcode: int
    data: Mapping[str, Any]
    timestamp: int = 0

    @property
    def own(self) -> Mapping[str, Any] | None:
        part = self.data.get(_ERROR_KIND) if isinstance(self.data, Mapping) else None
        return part if isinstance(part, Mapping) and isinstance(part.get("line"), str) else None


def exit_now(status: int) -> NoReturn:
    """End this process at once with ``status``, its output flushed.

    For a process that lost its peers: the process group's threads still wait on the dead or stopped
    peer's sockets and would hold the interpreter's exit for seconds. Everything it had to write is
    written (checkpoints are atomic, the run folder's lock is released), and torchrun ends the others
    only once this one is gone."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def root_cause(failures: list[Failure], nproc: int, ended: frozenset[int] = frozenset()) -> str:
    """The one line for a run some of whose processes failed: the cause, not its effects.

    ``failures`` in the order torchrun saw them; ``ended``: the ranks the launcher itself ended after
    the first failure (their deaths are effects, unless they had written their own error first).
    In order: a process's own error (a NaN loss, a refused run folder); a process that waited for the
    others in vain (--dist-timeout: one of them stopped or hung, and whatever killed it came later); a
    process killed by a signal; one that exited otherwise (a crash, its traceback above); and last a
    process that lost the connection to another (an effect of that one's death). The first torchrun
    saw of a kind comes first; the last good checkpoint, if a process named it, ends the line.
    """
    note = next((f.own["note"] for f in failures if f.own and f.own.get("note")), "")
    causes = [f for f in failures if f.own is not None or f.rank not in ended] or failures

    def kind(f: Failure) -> int:
        if f.own is not None:
            return {"": 0, "timeout": 1}.get(str(f.own.get("peer", "")), 4)
        return 2 if f.exitcode < 0 else 3

    first = min(causes, key=lambda f: (kind(f), causes.index(f)))
    if first.own is not None:
        return str(first.own["line"])
    how = (
        f"was killed by {_signal_name(-first.exitcode)}"
        if first.exitcode < 0
        else f"exited with status {first.exitcode} (see its messages above)"
    )
    return f"training process {first.rank} of {nproc} {how}; the run is stopped{'; ' + note if note else ''}"


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


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce(t: torch.Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=op)
    return t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _RoutineShutdownFilter(logging.Filter):
    """Drops torchrun's messages about a shutdown it was asked for and about a failed process (and the
    processes it then ends): the processes report the first themselves and :func:`launch` the second,
    in one line each."""

    ROUTINE = (
        "Received %s death signal",
        "Sending process %s closing signal",
        "failed (exitcode: %s)",
        "Unable to shutdown process %s via %s",
        "Closing process %s via signal %s",
        "no error file defined for parent, to copy child error file",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.ROUTINE)


# After one process fails, torchrun sends the others SIGTERM and waits this long before SIGKILL
# (its own default is 30 s): time for a process to finish writing a checkpoint, while a stopped one
# (SIGSTOP; it can act on nothing but SIGKILL) no longer holds the run's end for half a minute.
FAILED_GRACE_S = 5
STOPPED = 130  # the exit status of a process that stopped on request and saved its checkpoint


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # torchrun has reaped the processes that ended: only running ones answer
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _failed_processes_grace(grace_s: float, ended: set[int]) -> Iterator[None]:
    """torchrun's grace for the other processes after one failed, ``grace_s`` while in the block;
    adds to ``ended`` the (local) ranks torchrun then ends, still running when it closed the group. Stopped
    processes (SIGSTOP) are continued first, so that they end at once instead of after the grace.

    torchrun takes the grace from the default of ``PContext.close(death_sig, timeout=30)``, called
    without a timeout only on that path (a signal to the launcher passes ``--shutdown-timeout``)."""
    from torch.distributed.elastic.multiprocessing.api import PContext

    close = PContext.close

    def close_sooner(self: Any, death_sig: signal.Signals | None = None, timeout: float = grace_s) -> None:
        running = {rank: pid for rank, pid in self.pids().items() if _running(pid)}
        ended.update(running)
        if hasattr(signal, "SIGCONT"):
            # As a shell's `kill` and systemd do: a stopped process acts on the SIGTERM that follows only
            # once continued; then it finds the others gone and ends at once.
            for pid in running.values():
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass  # it has just ended
        close(self, death_sig, timeout)  # type: ignore[arg-type]

    PContext.close = close_sooner  # type: ignore[method-assign]
    try:
        yield
    finally:
        PContext.close = close  # type: ignore[method-assign]


def _failures(error: Any) -> list[Failure]:
    """The failed processes of torchrun's ChildFailedError."""
    return [
        Failure(rank, f.exitcode, f.error_file_data if isinstance(f.error_file_data, dict) else {}, f.timestamp)
        for rank, f in error.failures.items()
    ]


def launch(nproc: int, argv: list[str], stop_grace_s: float = 30) -> int:
    """Run ``python -m resnet <argv>`` in ``nproc`` processes on this machine through torchrun.

    Returns 0, or 130 when a signal (SIGTERM, SIGINT, ...) stopped the run: torchrun forwarded it and
    gave the processes ``stop_grace_s`` seconds to save their checkpoint before killing them. A failed
    run is one line (a ResNetError): :func:`root_cause` of the processes' failures.
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
        for n in (
            "torch.distributed.elastic.agent.server.api",
            "torch.distributed.elastic.multiprocessing.api",
            "torch.distributed.elastic.multiprocessing.errors.error_handler",
        )
    ]
    for log in elastic_loggers:
        log.addFilter(quiet)
    ended: set[int] = set()
    try:
        with _failed_processes_grace(FAILED_GRACE_S, ended):
            torchrun(args)
    except ChildFailedError as e:
        failures = _failures(e)
        if any(f.rank == 0 and f.exitcode == STOPPED for f in failures):
            return STOPPED  # a process was asked to stop: all saved, rank 0 printed how to resume
        raise ResNetError(root_cause(failures, nproc, frozenset(ended))) from None
    except SignalException:
        return STOPPED  # the processes saved a checkpoint and rank 0 printed how to resume
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
