"""Top-1/top-5 error of a network on a dataset, for any of the paper's test protocols.

Batches from :func:`resnet.data.make_eval_loader` are ``[B, C, H, W]`` (one view per image) or
``[B, V, C, H, W]`` (V views per image: 10 crops); multi-scale loaders yield one batch per scale for
the same images. Whatever the views, the softmax scores of an image are averaged, as the paper does.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

TOP_K = 5  # top-5 error is reported only for networks of more classes than this


def top5_text(top5_error: float | None, label: str = "top-5 error ") -> str:
    """``, top-5 error 1.23%``, or nothing where the network has 5 classes or fewer (every label is in its top 5)."""
    return "" if top5_error is None else f", {label}{100 * top5_error:.2f}%"


class NonFiniteOutputs(ResNetError):
    """The network gave NaN or infinite scores: its weights have diverged; no error rate is meaningful."""


@dataclass(frozen=True)
class EvalResult:
    """``top5_error`` is None for networks of 5 classes or fewer: every label is in their top 5."""

    top1_error: float
    top5_error: float | None
    loss: float
    images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scores(model: nn.Module, x: torch.Tensor, speed: Any) -> torch.Tensor:
    """Mean softmax over the views of each image: x is [B, C, H, W] or [B, V, C, H, W]."""
    views = x.shape[1] if x.dim() == 5 else 1
    flat = x.flatten(0, 1) if x.dim() == 5 else x
    with speed.autocast() if speed is not None else nullcontext():
        logits = model(speed.prepare(flat) if speed is not None else flat)
    probs = logits.float().softmax(dim=1)
    return probs.view(-1, views, probs.shape[1]).mean(dim=1)


def class_scores(model: nn.Module, x: torch.Tensor | list[torch.Tensor], speed: Any = None) -> torch.Tensor:
    """[B, classes] probabilities averaged over every view of each image (crops, flips, scales)."""
    if isinstance(x, (list, tuple)):  # multi-scale: one tensor per scale, same images
        return torch.stack([_scores(model, xs, speed) for xs in x]).mean(dim=0)
    return _scores(model, x, speed)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Any, speed: Any = None, *, quiet: bool = False, desc: str = "evaluating"
) -> EvalResult:
    """Evaluate in eval mode (BN running statistics); the model's training flag is restored after.

    A progress bar of batches is drawn on a terminal unless ``quiet`` (see :mod:`resnet.progress`).
    """
    from resnet.progress import progress

    was_training = model.training
    model.eval()
    errors1 = errors5 = 0
    loss_sum, n, bad, classes = 0.0, 0, 0, 0
    try:
        for batch in progress(loader, desc=desc, quiet=quiet, unit="batch"):
            x, y = batch[0], batch[1]
            probs = class_scores(model, x, speed)
            # argmax of NaN scores is some class, so a diverged network would get a plausible error rate.
            bad += int((~torch.isfinite(probs).all(dim=1)).sum())
            y = y.to(probs.device)
            classes = probs.shape[1]
            k = min(TOP_K, classes)
            top = probs.topk(k, dim=1).indices
            errors1 += int((top[:, 0] != y).sum())
            errors5 += int((top != y[:, None]).all(dim=1).sum())
            loss_sum += float(F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum"))
            n += len(y)
    finally:
        model.train(was_training)
    if n == 0:
        raise ResNetError("the evaluation set is empty")
    if bad:
        raise NonFiniteOutputs(
            f"the network's outputs are NaN or infinite for {bad} of {n} images (its weights have diverged)"
        )
    return EvalResult(errors1 / n, errors5 / n if classes > TOP_K else None, loss_sum / n, n)


def model_from_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The network of a resnet checkpoint (or run folder, or shipped name such as ``resnet20.cifar10``),
    weights loaded, in eval mode, and its meta."""
    from resnet.checkpoints import load_weights, nonfinite_keys
    from resnet.models import build_model
    from resnet.weights.shipped import read_checkpoint

    ckpt, _ = read_checkpoint(path)
    meta = ckpt.meta
    weights = ckpt.inference_weights()
    broken = nonfinite_keys(weights)
    if broken:
        raise ResNetError(
            f"{path}: {len(broken)} weight tensors hold NaN or infinite values (e.g. {broken[0]}); "
            "the checkpoint is unusable"
        )
    model = build_model(meta["model"], **meta["model_options"])
    load_weights(model, weights, name=meta["model"])
    return model.to(device).eval(), meta
