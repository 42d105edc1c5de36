"""Gradient flow: how large each layer's gradient is, at initialisation and after a few steps.

The paper's readers ask why plain nets degrade if BN already keeps gradients from vanishing. This
measures it instead of arguing: the norm of the loss gradient with respect to each convolution's
weight, layer by layer in forward order, for plain and residual networks of several depths, on the
same fixed batch, first at initialisation and then after ``steps`` SGD steps on training batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from resnet.errors import ResNetError
from resnet.progress import progress


@dataclass
class GradientProfile:
    model: str
    step: int  # SGD steps taken before measuring (0: at initialisation)
    layers: list[str] = field(default_factory=list)  # weight names, forward order
    norms: list[float] = field(default_factory=list)  # ||dL/dW|| per layer
    loss: float = float("nan")

    @property
    def first_to_last(self) -> float:
        """Gradient norm of the first layer over that of the last convolution: <1 means it shrinks
        on its way back to the input."""
        return self.norms[0] / self.norms[-1] if self.norms and self.norms[-1] > 0 else float("nan")


def conv_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every convolution weight on the main path (shortcut projections left out), in forward order."""
    return [
        (f"{name}.weight", m.weight)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and ".downsample" not in name
    ]


def gradient_norms(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, name: str = "", step: int = 0
) -> GradientProfile:
    """Per-layer gradient norms of the cross-entropy loss on one batch (train-mode BN, as in training).

    BN's running statistics are saved and restored, so measuring does not change the model.
    """
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    weights = conv_weights(model)
    profile = GradientProfile(
        name,
        step,
        [n for n, _ in weights],
        [float(w.grad.norm()) if w.grad is not None else 0.0 for _, w in weights],
        float(loss.detach()),
    )
    model.zero_grad(set_to_none=True)
    model.load_state_dict(buffers, strict=False)
    model.train(was_training)
    return profile


def gradient_flow(
    model: nn.Module,
    measure: tuple[torch.Tensor, torch.Tensor],
    train_batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    *,
    name: str = "",
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    quiet: bool = False,
) -> list[GradientProfile]:
    """Profiles at initialisation and after ``steps`` SGD steps (the paper's optimiser settings); a
    progress bar counts the steps unless ``quiet``."""
    if steps < 0:
        raise ResNetError(f"--steps must be >= 0 (got {steps})")
    profiles = [gradient_norms(model, *measure, name=name, step=0)]
    if steps:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        model.train()
        for _ in progress(range(steps), desc=f"{name or 'model'}: SGD steps", quiet=quiet, unit="step"):
            images, labels = next(train_batches)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        profiles.append(gradient_norms(model, *measure, name=name, step=steps))
    return profiles
