"""The ImageNet family (Table 1 of the paper): ResNet-18/34/50/101/152 and their plain twins.

Stem: 7x7/2 convolution with 64 filters, BN, ReLU, 3x3/2 max pool. Four stages (conv2_x ... conv5_x)
at 64, 128, 256, 512 base widths; conv3_1, conv4_1 and conv5_1 downsample by 2. Global average
pool and a fully connected layer. Attribute names are torchvision's, so its weights load as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from resnet.models.blocks import Block, init_weights, make_stage

STAGE_WIDTHS = (64, 128, 256, 512)


class ImageNetResNet(nn.Module):
    """A ResNet for 224x224 inputs (any size >= 32 works: the network is convolutional up to the pool).

    Args:
        block: the block type (basic, bottleneck or their pre-activation forms).
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-34/50.
        shortcut: ``"A"``, ``"B"`` or ``"C"``; ``None`` builds the plain network.
        stride_on: ``"1x1"`` (paper) or ``"3x3"`` (torchvision v1.5); only bottlenecks care.
        groups, width_per_group: ResNeXt's cardinality and width (1 and 64 give ResNet).
    """

    # The stages, registered by name in __init__.
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(
        self,
        block: type[Block],
        layers: Sequence[int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        shortcut: str | None = "B",
        stride_on: str = "1x1",
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for index, (width, blocks) in enumerate(zip(STAGE_WIDTHS, layers, strict=True)):
            stage, channels = make_stage(
                block,
                channels,
                width,
                blocks,
                1 if index == 0 else 2,
                shortcut,
                stride_on=stride_on,
                groups=groups,
                base_width=width_per_group,
            )
            self.add_module(f"layer{index + 1}", stage)
        # Pre-activation networks end their last block on an addition: normalise once before pooling.
        self.final_bn = nn.BatchNorm2d(channels) if block.preact else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        init_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (stride 32), before pooling: what a detection backbone uses."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.final_bn is not None:
            x = self.relu(self.final_bn(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))
