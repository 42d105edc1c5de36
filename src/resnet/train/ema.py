"""Exponential moving average of the weights (beyond the paper; off by default)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``ema = decay * ema + (1 - decay) * weights`` after each step; buffers (BN statistics) are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.params = {k for k, _ in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.params:
                self.state[k].lerp_(v, 1.0 - self.decay)
            else:
                self.state[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.state[k].copy_(v)
