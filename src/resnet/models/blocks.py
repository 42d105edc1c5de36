"""Residual blocks and their shortcuts, in one place for both families.

A block computes ``relu(F(x) + shortcut(x))`` (Fig. 2 of the paper). What the shortcut is depends on
the paper's three options (Section 3.3):

* ``"A"``: identity; where the shape changes, the input is subsampled (stride 2) and the extra
  channels are zeros. No parameters.
* ``"B"``: identity, except a 1x1 projection (+BN) where the shape changes.
* ``"C"``: a 1x1 projection (+BN) on every block.
* ``None``: no shortcut at all: the block of a *plain* network, which is the same stack of layers
  without the addition.

Parameter names follow torchvision (``conv1``, ``bn1``, ..., ``downsample.0/1``) so that its state
dicts load with ``strict=True``. ``downsample`` holds the shortcut's module when it is not the bare
identity (for option A it has no parameters, so the state dict is unaffected).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from resnet.errors import ResNetError

SHORTCUTS = ("A", "B", "C")
STRIDE_ON = ("1x1", "3x3")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1. No bias: every convolution is followed by BN."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the new channels, half on each side.

    Padding both sides (rather than appending) is what the widely used CIFAR implementation does,
    whose parameter counts the paper's Table 6 is quoted against; either is the paper's option A.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ResNetError(f"option A cannot shrink channels ({in_channels} -> {out_channels})")
        self.stride = stride
        self.pad_front = (out_channels - in_channels) // 2
        self.pad_back = out_channels - in_channels - self.pad_front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_front}, {self.pad_back})"


def make_shortcut(
    option: str | None, in_channels: int, out_channels: int, stride: int, *, with_bn: bool = True
) -> nn.Module | None:
    """The module on a block's shortcut path, or ``None`` for the bare identity (or no shortcut).

    ``with_bn=False`` gives the pre-activation form, whose projection sees an already normalised input.
    """
    reshapes = stride != 1 or in_channels != out_channels
    if option is None or (option in ("A", "B") and not reshapes):
        return None
    if option == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    if option in ("B", "C"):
        layers: list[nn.Module] = [conv1x1(in_channels, out_channels, stride)]
        if with_bn:
            layers.append(nn.BatchNorm2d(out_channels))
        return nn.Sequential(*layers)
    raise ResNetError(f"shortcut must be one of {', '.join(SHORTCUTS)} (got {option!r})")


class Block(nn.Module):
    """What every block shares: its shortcut and whether it adds it at all.

    Subclasses build the residual function ``F`` and name, in ``last``, the layer whose weight
    ``zero_init_residual`` zeroes: the last BN of ``F``, or its last convolution in pre-activation
    blocks (which end on a convolution).
    """

    expansion: ClassVar[int] = 1
    preact: ClassVar[bool] = False
    last: ClassVar[str]

    def __init__(self, shortcut: str | None) -> None:
        super().__init__()
        self.residual = shortcut is not None
        self.relu = nn.ReLU(inplace=True)

    def add_shortcut(self, shortcut: str | None, in_channels: int, out_channels: int, stride: int) -> None:
        """Called last by each block, so the state dict lists the branch first, as torchvision does."""
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, with_bn=not self.preact)

    def zero_init_last(self) -> None:
        """Make ``F`` output zeros so the block starts as its shortcut (Goyal et al. 2017)."""
        nn.init.zeros_(getattr(self, self.last).weight)


class BasicBlock(Block):
    """Two 3x3 convolutions (Fig. 5 left): ResNet-18/34 and the CIFAR networks."""

    last = "bn2"

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str | None = "B",
        stride_on: str = "1x1",
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        if groups != 1 or base_width != 64:
            raise ResNetError("basic blocks have no groups or width options (only bottlenecks do)")
        super().__init__(shortcut)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.add_shortcut(shortcut, in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


def _bottleneck_strides(stride: int, stride_on: str) -> tuple[int, int]:
    """(stride of the first 1x1, stride of the 3x3): the paper's placement or torchvision's v1.5."""
    if stride_on == "1x1":
        return stride, 1
    if stride_on == "3x3":
        return 1, stride
    raise ResNetError(f"stride_on must be one of {', '.join(STRIDE_ON)} (got {stride_on!r})")


class Bottleneck(Block):
    """1x1 reduce, 3x3, 1x1 expand x4 (Fig. 5 right): ResNet-50/101/152.

    ``stride_on="1x1"`` is the paper's placement of a downsampling block's stride (on the first 1x1,
    3.8 GFLOPs for ResNet-50); ``"3x3"`` is torchvision's "v1.5" (4.1 GFLOPs, slightly more accurate).
    ``groups``/``base_width`` make the 3x3 grouped: ResNeXt (Xie et al. 2017), beyond the paper.
    """

    expansion = 4
    last = "bn3"

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str | None = "B",
        stride_on: str = "1x1",
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        out_channels = planes * self.expansion
        super().__init__(shortcut)
        width = int(planes * (base_width / 64.0)) * groups
        stride_1x1, stride_3x3 = _bottleneck_strides(stride, stride_on)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.add_shortcut(shortcut, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class PreActBasicBlock(Block):
    """Pre-activation basic block (He et al. 2016, "Identity Mappings"), beyond the 2015 paper.

    BN-ReLU come before each convolution and nothing follows the addition, so the identity path is
    clean. A projection or zero-pad shortcut sees the pre-activated input (as in the authors' code).
    """

    preact = True
    last = "conv2"

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str | None = "B",
        stride_on: str = "1x1",
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        if groups != 1 or base_width != 64:
            raise ResNetError("basic blocks have no groups or width options (only bottlenecks do)")
        super().__init__(shortcut)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.add_shortcut(shortcut, in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(act))
        return out


class PreActBottleneck(Block):
    """Pre-activation bottleneck (He et al. 2016), beyond the 2015 paper."""

    expansion = 4
    preact = True
    last = "conv3"

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str | None = "B",
        stride_on: str = "1x1",
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        out_channels = planes * self.expansion
        super().__init__(shortcut)
        width = int(planes * (base_width / 64.0)) * groups
        stride_1x1, stride_3x3 = _bottleneck_strides(stride, stride_on)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.add_shortcut(shortcut, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(act))
        return out


def make_stage(
    block: type[Block],
    in_channels: int,
    planes: int,
    blocks: int,
    stride: int,
    shortcut: str | None,
    **block_options: object,
) -> tuple[nn.Sequential, int]:
    """One stage (conv2_x, conv3_x, ...): ``blocks`` blocks, the first one downsampling by ``stride``.

    Returns the stage and its output channels.
    """
    # The constructor every block class shares (Block's own takes only the shortcut).
    build: Callable[..., Block] = block
    layers = []
    for i in range(blocks):
        layers.append(build(in_channels, planes, stride if i == 0 else 1, shortcut, **block_options))
        in_channels = planes * block.expansion
    return nn.Sequential(*layers), in_channels


def init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """He initialisation for convolutions (the paper's [13]), BN at gamma=1, beta=0.

    The fully connected layer keeps PyTorch's default, as torchvision does.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Block):
                m.zero_init_last()
