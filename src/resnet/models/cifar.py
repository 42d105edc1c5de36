"""The CIFAR-10 family (Section 4.2 of the paper): depth 6n+2, e.g. ResNet-20 ... ResNet-1202.

A 3x3 convolution with 16 filters, then three stages of n blocks (2n layers) on 32x32, 16x16 and 8x8
maps with 16, 32 and 64 filters, stride-2 convolutions subsampling, global average pool and a
fully connected layer: 6n+2 weighted layers. Option A shortcuts by default, so a residual net has
exactly the parameters of its plain twin.

Beyond the paper: ``block="bottleneck"`` gives the depth 9n+2 networks of He et al. 2016
(ResNet-164, ResNet-1001), whose stages output 64, 128 and 256 channels.
"""

from __future__ import annotations

import torch
from torch import nn

from resnet.errors import ResNetError
from resnet.models.blocks import Block, init_weights, make_stage

STAGE_WIDTHS = (16, 32, 64)


def blocks_per_stage(depth: int, layers_per_block: int) -> int:
    """n for depth = 3 * layers_per_block * n + 2, or a ResNetError naming the valid depths."""
    per_n = 3 * layers_per_block
    if not isinstance(depth, int) or depth < per_n + 2 or (depth - 2) % per_n:
        examples = ", ".join(str(per_n * n + 2) for n in (1, 2, 3, 5, 9, 18))
        raise ResNetError(f"depth must be {per_n}n+2 for this block type (e.g. {examples}), got {depth!r}")
    return (depth - 2) // per_n


class CifarResNet(nn.Module):
    """A ResNet for 32x32 inputs (any size >= 8 works).

    Args:
        depth: total weighted layers, 6n+2 with basic blocks (9n+2 with bottlenecks).
        block: the block type; its ``expansion`` and ``preact`` decide the rest.
        shortcut: ``"A"`` (the paper's choice here), ``"B"`` or ``"C"``; ``None`` builds the plain net.
    """

    # The stages, registered by name in __init__.
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential

    def __init__(
        self,
        depth: int,
        block: type[Block],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        shortcut: str | None = "A",
        stride_on: str = "1x1",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth, 3 if block.expansion > 1 else 2)
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, padding=1, bias=False)
        # Pre-activation networks start with a bare convolution: each block normalises its own input.
        self.bn1 = None if block.preact else nn.BatchNorm2d(STAGE_WIDTHS[0])
        # The ReLU is registered where the forward first applies it (after bn1, or after final_bn in
        # pre-activation nets), so running the children in order is the forward up to each stage:
        # the contract of torchvision's IntermediateLayerGetter and of FeatureExtractor.
        if not block.preact:
            self.relu = nn.ReLU(inplace=True)
        channels = STAGE_WIDTHS[0]
        for index, width in enumerate(STAGE_WIDTHS):
            stage, channels = make_stage(
                block, channels, width, n, 1 if index == 0 else 2, shortcut, stride_on=stride_on
            )
            self.add_module(f"layer{index + 1}", stage)
        self.final_bn = nn.BatchNorm2d(channels) if block.preact else None
        if block.preact:
            self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        init_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (8x8 for a 32x32 input), before pooling."""
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.final_bn is not None:
            x = self.relu(self.final_bn(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))
