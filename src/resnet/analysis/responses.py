"""Layer responses (the paper's Figure 7): the spread of each 3x3 layer's output.

A response is the output of a 3x3 convolution after its BN and before any other nonlinearity (the
ReLU, or the addition of the shortcut). The paper argues residual functions are closer to zero than
unreferenced ones, so a ResNet's responses should be smaller than its plain twin's, and smaller
still in deeper ResNets.

We report, for each 3x3 layer in forward order, the standard deviation of all its response values
(every image, channel and position) over the images given, accumulated in float64 so that many
batches give the same number as one large batch. The network runs in eval mode: BN uses its
running statistics, as at test time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from resnet.errors import ResNetError
from resnet.models.blocks import BasicBlock, Bottleneck


@dataclass
class LayerResponse:
    index: int  # 1-based position among the 3x3 layers, in forward order
    name: str  # the BN module whose output is measured, e.g. "layer2.0.bn1"
    std: float


def response_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """The BN modules that follow a 3x3 convolution, in forward order (the stem's too, if 3x3)."""
    layers: list[tuple[str, nn.BatchNorm2d]] = []
    conv1, bn1 = getattr(model, "conv1", None), getattr(model, "bn1", None)
    if isinstance(conv1, nn.Conv2d) and conv1.kernel_size == (3, 3) and isinstance(bn1, nn.BatchNorm2d):
        layers.append(("bn1", bn1))
    for name, module in model.named_modules():
        if isinstance(module, BasicBlock):
            layers += [(f"{name}.bn1", module.bn1), (f"{name}.bn2", module.bn2)]
        elif isinstance(module, Bottleneck):
            layers.append((f"{name}.bn2", module.bn2))
    if not layers:
        raise ResNetError(
            "layer responses need a post-activation ResNet or plain net (BN after each 3x3 "
            "convolution); pre-activation networks have no such layer"
        )
    return layers


@torch.no_grad()
def layer_responses(
    model: nn.Module, batches: Iterable[torch.Tensor | tuple[torch.Tensor, ...]]
) -> list[LayerResponse]:
    """Standard deviation of each 3x3 layer's response over every image in ``batches``.

    ``batches`` yields normalised image tensors (or ``(images, labels)`` pairs) on the model's device.
    """
    layers = response_layers(model)
    sums = torch.zeros(len(layers), dtype=torch.float64)
    squares = torch.zeros(len(layers), dtype=torch.float64)
    counts = torch.zeros(len(layers), dtype=torch.float64)

    def hook(index: int):
        def record(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            values = out.detach().double()
            sums[index] += values.sum().cpu()
            squares[index] += values.square().sum().cpu()
            counts[index] += values.numel()

        return record

    handles = [bn.register_forward_hook(hook(i)) for i, (_, bn) in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if counts[0] == 0:
        raise ResNetError("no images to measure layer responses on")
    mean = sums / counts
    # Population variance from the running sums; clamp the tiny negatives rounding can leave.
    std = ((squares / counts - mean.square()).clamp_min(0.0)).sqrt()
    return [LayerResponse(i + 1, name, float(s)) for i, ((name, _), s) in enumerate(zip(layers, std))]
