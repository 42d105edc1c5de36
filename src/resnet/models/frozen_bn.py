"""Frozen BatchNorm: BN as the fixed per-channel affine map its running statistics define.

Detectors fine-tune with batches of one or two images per GPU, too few for batch statistics, so they
freeze every BN of the backbone (torchvision's ``FrozenBatchNorm2d``, Detectron's ``FrozenBN``):
``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``, in training mode as in eval
mode. ``weight`` and ``bias`` are buffers, not parameters, so no optimizer can change them, and the
state-dict keys are those of ``nn.BatchNorm2d``: a BN checkpoint loads into a frozen model and a frozen
model's checkpoint loads back into a BN model, both with ``strict=True``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet.errors import ResNetError

FROZEN_BN_EPS = 1e-5  # torchvision's, and that of every BN in this package's networks


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (all buffers)."""

    # The buffers registered in __init__.
    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(self, num_features: int, eps: float = FROZEN_BN_EPS) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        # Kept only so the keys equal BatchNorm2d's; never read or incremented.
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm) -> FrozenBatchNorm2d:
        """A frozen copy of ``bn``'s current values and eps (on ``bn``'s device and dtype)."""
        if bn.running_mean is None or bn.running_var is None:
            raise ResNetError("cannot freeze a BatchNorm without running statistics (track_running_stats=False)")
        frozen = cls(bn.num_features, bn.eps).to(device=bn.running_mean.device, dtype=bn.running_mean.dtype)
        with torch.no_grad():
            if bn.affine:
                frozen.weight.copy_(bn.weight)
                frozen.bias.copy_(bn.bias)
            frozen.running_mean.copy_(bn.running_mean)
            frozen.running_var.copy_(bn.running_var)
            if bn.num_batches_tracked is not None:
                frozen.num_batches_tracked.copy_(bn.num_batches_tracked)
        return frozen

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # torchvision's FrozenBatchNorm2d saves no num_batches_tracked: accept its checkpoints too.
        state_dict.setdefault(prefix + "num_batches_tracked", self.num_batches_tracked.clone())
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One multiply-add per element, as torchvision does; reshaped for NCHW broadcasting.
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` (and ``SyncBatchNorm``) in ``module`` by a frozen copy, in place.

    Values are kept, so call it before or after loading weights. Returns ``module`` (or, when
    ``module`` is itself a BN, its frozen replacement), like ``nn.SyncBatchNorm.convert_sync_batchnorm``.
    Apply it to a submodule (``freeze_batchnorm(model.layer1)``) to freeze only that part.
    """
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        return FrozenBatchNorm2d.from_batchnorm(module)
    for name, child in module.named_children():
        frozen = freeze_batchnorm(child)
        if frozen is not child:
            setattr(module, name, frozen)
    return module
