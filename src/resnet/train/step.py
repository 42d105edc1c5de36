"""One SGD step: forward and backward over the step's micro-batches, then the update.

The trainer and ``resnet bench`` both run this function, so the benchmark times the step the
trainer takes (autocast, channels-last, gradient accumulation, the fp16 scaler), not a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from resnet.device import Speed, at_least_float32

# Called once per micro-batch with (loss, logits, labels), detached: the trainer's metric window.
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


def train_step(
    forward: nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    *,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    speed: Speed,
    scaler: torch.amp.GradScaler | None = None,
    no_sync: Callable[[], AbstractContextManager[None]] | None = None,
    on_batch: BatchHook | None = None,
) -> torch.Tensor:
    """Accumulate the gradients of ``batches`` (each loss divided by their number), step, zero the grads.

    ``no_sync`` (DDP's): skip the gradient all-reduce on every micro-batch but the last. Returns the
    mean loss of the micro-batches, detached.
    """
    losses = []
    for i, (x, y) in enumerate(batches):
        accumulate_only = no_sync is not None and i < len(batches) - 1
        with no_sync() if no_sync is not None and accumulate_only else nullcontext():
            with speed.autocast():
                logits = forward(speed.prepare(x))
                loss = criterion(at_least_float32(logits), y)
            scaled = loss / len(batches)
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        losses.append(loss.detach())
        if on_batch is not None:
            on_batch(losses[-1], logits.detach(), y)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return losses[0] if len(losses) == 1 else torch.stack(losses).mean()
