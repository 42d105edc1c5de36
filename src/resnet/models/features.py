"""Multi-scale feature maps for detection and segmentation: C2-C5 of the ImageNet nets, the CIFAR stages.

``feature_info(model)`` says, without running anything, what each stage outputs: its module name
(``layer1`` ... ``layer4``, the keys torchvision's ``return_layers`` takes), channels and stride.
``FeatureExtractor(model, out_indices)`` runs the model up to the last requested stage and returns
those stages' outputs, like timm's ``features_only`` models.

Stage ``k`` is ``layer{k}``: out_indices ``(1, 2, 3, 4)`` are C2-C5 of an ImageNet net (strides 4, 8,
16, 32; 16 or 8 at most once dilated), ``(1, 2, 3)`` the three stages of a CIFAR net (strides 1, 2, 4).

Pre-activation networks: a stage's feature is the stage's output, the un-normalised sum of its last
block, for the last stage too (the final BN-ReLU, which the classifier applies before pooling, is left
out). Every level is then the same kind of tensor, and the maps equal what torchvision's
``IntermediateLayerGetter`` returns for the same ``layer{k}`` names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from resnet.errors import ResNetError
from resnet.models.blocks import Block, ZeroPadShortcut


@dataclass(frozen=True)
class FeatureInfo:
    """One stage's feature map, as known before any forward pass."""

    index: int  # the stage number out_indices use: k for layer{k}
    name: str  # the child module whose output it is (torchvision's return_layers key)
    layer: str  # the paper's name for the stage: conv2_x ... conv5_x
    channels: int
    stride: int  # input pixels per feature pixel; an H x W input gives ceil(H/stride) x ceil(W/stride)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The map's spatial size for an ``height`` x ``width`` input (every strided layer rounds up)."""
        return -(-height // self.stride), -(-width // self.stride)


def module_stride(module: nn.Module) -> int:
    """How many input pixels one output pixel of ``module`` steps over, from its layers' strides."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, ZeroPadShortcut)):
        stride = module.stride
        return stride[0] if isinstance(stride, tuple) else stride
    # A block's residual branch sets its stride; the shortcut matches it and runs in parallel.
    children = [c for n, c in module.named_children() if not (isinstance(module, Block) and n == "downsample")]
    return math.prod(module_stride(c) for c in children)


def _out_channels(stage: nn.Sequential) -> int:
    """The channels of the stage's last block: those of the last convolution of its residual branch."""
    convs = [m for m in stage[-1].children() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def feature_info(model: nn.Module) -> list[FeatureInfo]:
    """Every stage of a ResNet of either family (``layer1``, ``layer2``, ...), in order."""
    stages: list[FeatureInfo] = []
    stride = 1
    for name, child in model.named_children():
        stride *= module_stride(child)
        if name == f"layer{len(stages) + 1}":
            index = len(stages) + 1
            # A stage is the nn.Sequential of make_stage (torchvision's too): its name says so, not its type.
            channels = _out_channels(cast(nn.Sequential, child))
            stages.append(FeatureInfo(index, name, f"conv{index + 1}_x", channels, stride))
    if not stages:
        raise ResNetError(
            f"{type(model).__name__} has no stages named layer1, layer2, ...: not a ResNet of this package"
        )
    return stages


def check_out_indices(out_indices: object, num_stages: int) -> tuple[int, ...]:
    """``out_indices`` as a tuple of increasing stage numbers in 1..num_stages, or a one-line error."""
    valid = tuple(range(1, num_stages + 1))
    indices = tuple(out_indices) if isinstance(out_indices, (list, tuple)) else None
    if (
        not indices
        or any(isinstance(i, bool) or i not in valid for i in indices)
        or list(indices) != sorted(set(indices))
    ):
        raise ResNetError(
            f"out_indices must be increasing stage numbers among {', '.join(map(str, valid))} "
            f"(k for layer{{k}}), got {out_indices!r}"
        )
    return indices


class FeatureExtractor(nn.Module):
    """The model's layers up to its last requested stage, returning the requested stages' outputs.

    The layers keep their names (``conv1``, ``bn1``, ``layer1`` ...), so a checkpoint of the classifier
    loads with ``strict=False`` (only its head, ``fc`` and a pre-activation net's ``final_bn``, is
    unexpected); the usual order is to build the classifier, load its weights, then wrap it.
    ``feature_info`` lists the returned maps, in the order ``forward`` returns them.
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        stages = feature_info(model)
        indices = check_out_indices(out_indices if out_indices is not None else [s.index for s in stages], len(stages))
        self.feature_info = [stages[i - 1] for i in indices]
        self.return_layers = tuple(f.name for f in self.feature_info)
        # The children in order, as IntermediateLayerGetter keeps them: the forward runs them in turn.
        for name, child in model.named_children():
            self.add_module(name, child)
            if name == self.return_layers[-1]:
                break

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for name, module in self.named_children():
            x = module(x)
            if name in self.return_layers:
                features.append(x)
        return features
