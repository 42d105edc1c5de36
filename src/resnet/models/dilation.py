"""Dilated last stages for segmentation: output stride 16 or 8 instead of 32, with the same weights.

As in DeepLab and torchvision's ``replace_stride_with_dilation``, a dilated stage keeps its layers and
weights; its stride-2 layers (branch and shortcut) get stride 1, and the 3x3 convolutions that come
after the removed stride are dilated by the stage's stride (2), on top of any earlier stage's dilation.
A 3x3 convolution at or before the removed stride keeps the previous dilation.

For torchvision's bottleneck (stride on the 3x3) this is torchvision's rule exactly: the first block's
3x3 gets ``previous_dilation``, every later 3x3 the new dilation. With the paper's placement (stride
on the first 1x1) and in basic blocks, which torchvision refuses to dilate, the 3x3 after the removed
stride is dilated too. Under this rule the dilated network computes the strided network's feature at
every ``s``-th position exactly (``s = 32 / output_stride``), borders included: the weights keep
their meaning, and only the sampling of the output gets denser.
"""

from __future__ import annotations

from torch import nn

from resnet.errors import ResNetError
from resnet.models.blocks import ZeroPadShortcut
from resnet.models.features import feature_info, module_stride
from resnet.models.imagenet import ImageNetResNet

OUTPUT_STRIDES = (32, 16, 8)
DILATED_STAGES = {32: (), 16: ("layer4",), 8: ("layer3", "layer4")}


def dilate(model: nn.Module, output_stride: int) -> nn.Module:
    """Make an ImageNet-family ``model``'s last stages dilated, in place, so its output stride is ``output_stride``.

    The parameters and buffers are untouched (same state-dict keys, shapes and values). Returns ``model``.
    """
    if not isinstance(model, ImageNetResNet):
        raise ResNetError(
            f"output_stride (dilation) applies only to ImageNet-family networks, "
            f"not {type(model).__name__} (CIFAR stages are already at strides 1, 2, 4)"
        )
    if isinstance(output_stride, bool) or output_stride not in OUTPUT_STRIDES:
        raise ResNetError(f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))} (got {output_stride!r})")
    if feature_info(model)[-1].stride != 32:
        raise ResNetError("this network is already dilated; dilate a network built with output stride 32")
    dilation = 1
    for name in DILATED_STAGES[output_stride]:
        stage = getattr(model, name)
        previous, dilation = dilation, dilation * module_stride(stage)
        _dilate_stage(stage, previous, dilation)
    return model


def _dilate_stage(stage: nn.Sequential, previous: int, new: int) -> None:
    rate = previous
    for block in stage:
        # A block's children are registered in forward order, so "after the stride" is "later here".
        for name, child in block.named_children():
            if name == "downsample":
                _remove_strides(child)
            elif isinstance(child, nn.Conv2d):
                if child.kernel_size[0] > 1:
                    child.dilation = (rate, rate)
                    child.padding = (rate * (child.kernel_size[0] // 2),) * 2
                if child.stride != (1, 1):
                    child.stride = (1, 1)
                    rate = new


def _remove_strides(shortcut: nn.Module) -> None:
    for m in shortcut.modules():
        if isinstance(m, ZeroPadShortcut):
            m.stride = 1
        elif isinstance(m, nn.Conv2d):
            m.stride = (1, 1)
