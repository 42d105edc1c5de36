"""Data-parallel training across processes: torchrun's environment, the launcher, synchronised BN.

``torchrun --nproc-per-node N -m resnet train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; ``resnet train
--nproc N`` starts the same thing through :func:`launch`. One process per device; the batch size
given to ``resnet train`` is the global batch, split evenly over the processes.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

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


def init_process_group(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                rank=info.rank, world_size=info.world_size)


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


def launch(nproc: int, argv: list[str]) -> None:
    """Run ``python -m resnet <argv>`` in ``nproc`` processes on this machine through torchrun."""
    from torch.distributed.run import main as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = ["--nnodes", "1", "--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1",
            "--master-port", str(_free_port()), "-m", "resnet", *argv]
    logger.info("launching %d processes: torchrun %s", nproc, " ".join(args))
    try:
        torchrun(args)
    except ChildFailedError as e:
        raise ResNetError(f"a training process failed (see its messages above): {e.get_first_failure()[1].message}") from None


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of all processes.

    PyTorch's own ``nn.SyncBatchNorm`` runs only on GPUs; this one works on any device (gloo on CPU).
    Mean and variance are computed in two passes over the global batch through differentiable
    all-reduces, so gradients flow across processes exactly as in one big batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce as all_reduce_grad

        dims = (0, 2, 3)
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        count = all_reduce(count.clone())
        mean = all_reduce_grad(x.sum(dims)) / count
        centred = x - mean[None, :, None, None]
        var = all_reduce_grad((centred * centred).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
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
            sync = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats).to(device)
            sync.load_state_dict(child.state_dict())
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model

