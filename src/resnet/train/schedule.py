"""Learning-rate schedules counted in iterations (optimizer steps), as the paper counts them.

``Schedule.lr(step)`` is the LR of optimizer step ``step`` (0-based). The schedules that react to
training (plateau, the ResNet-110 warm rule) keep their state in a JSON-serialisable dict, so a
resumed run takes exactly the same LR path as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from resnet.train.config import TrainConfig


class _Base(Protocol):
    def lr(self, step: int) -> float: ...


class MultiStep:
    """``lr * gamma**k`` after the k-th milestone (the paper: 0.1, /10 at 32k and 48k)."""

    def __init__(self, lr: float, milestones: list[int], gamma: float) -> None:
        self.base, self.milestones, self.gamma = lr, sorted(milestones), gamma

    def lr(self, step: int) -> float:
        return self.base * self.gamma ** sum(step >= m for m in self.milestones)


class Cosine:
    """Half a cosine from ``lr`` to 0 between ``start`` and ``total`` (beyond the paper)."""

    def __init__(self, lr: float, total: int, start: int = 0) -> None:
        self.base, self.total, self.start = lr, total, start

    def lr(self, step: int) -> float:
        t = min(max(step - self.start, 0) / max(self.total - self.start, 1), 1.0)
        return 0.5 * self.base * (1.0 + math.cos(math.pi * t))


class Linear:
    """A straight line from ``lr`` to 0 between ``start`` and ``total`` (beyond the paper; the decay
    that does best under a fixed training budget, Li et al. 2020, "Budgeted Training")."""

    def __init__(self, lr: float, total: int, start: int = 0) -> None:
        self.base, self.total, self.start = lr, total, start

    def lr(self, step: int) -> float:
        t = min(max(step - self.start, 0) / max(self.total - self.start, 1), 1.0)
        return self.base * (1.0 - t)


class Constant:
    def __init__(self, lr: float) -> None:
        self.base = lr

    def lr(self, step: int) -> float:
        return self.base


class Plateau:
    """Multiply the LR by ``gamma`` after ``patience`` validations without an improvement of at
    least ``threshold`` in validation error (the paper's ImageNet rule, "when the error plateaus")."""

    def __init__(self, lr: float, gamma: float, patience: int, threshold: float) -> None:
        self.gamma, self.patience, self.threshold = gamma, patience, threshold
        self.current, self.best, self.bad = lr, math.inf, 0

    def lr(self, step: int) -> float:
        return self.current

    def observe(self, val_error: float) -> bool:
        """Record a validation error; True if the LR dropped."""
        if val_error < self.best - self.threshold:
            self.best, self.bad = val_error, 0
            return False
        self.bad += 1
        if self.bad > self.patience:
            self.current *= self.gamma
            self.bad = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "best": None if math.isinf(self.best) else self.best, "bad": self.bad}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.current, self.bad = float(d["current"]), int(d["bad"])
        self.best = math.inf if d["best"] is None else float(d["best"])


class WarmRule:
    """Section 4.2 for ResNet-110: LR ``warm_lr`` until the training error falls below ``until``
    (about 400 iterations in the paper), then the normal schedule. Once off, it stays off."""

    ended_at: int | None  # the step at which the rule ended

    def __init__(self, warm_lr: float, until: float) -> None:
        self.warm_lr, self.until, self.active, self.ended_at = warm_lr, until, True, None

    def observe(self, step: int, train_error: float) -> bool:
        """Record the training error measured up to ``step``; True if the rule just ended."""
        if self.active and train_error < self.until:
            self.active, self.ended_at = False, step
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active, "ended_at": self.ended_at}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.active, self.ended_at = bool(d["active"]), d["ended_at"]


class Schedule:
    """A base schedule, an optional linear warm-up and the optional ResNet-110 warm rule."""

    def __init__(self, base: _Base, warmup: int = 0, warm_rule: WarmRule | None = None) -> None:
        self.base, self.warmup, self.warm_rule = base, warmup, warm_rule

    def lr(self, step: int) -> float:
        if self.warm_rule is not None and self.warm_rule.active:
            return self.warm_rule.warm_lr
        scale = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        return self.base.lr(step) * scale

    def observe_train_error(self, step: int, train_error: float) -> bool:
        return self.warm_rule.observe(step, train_error) if self.warm_rule is not None else False

    def observe_val_error(self, val_error: float) -> bool:
        return self.base.observe(val_error) if isinstance(self.base, Plateau) else False

    def state_dict(self) -> dict[str, Any]:
        return {
            "plateau": self.base.state_dict() if isinstance(self.base, Plateau) else None,
            "warm_rule": self.warm_rule.state_dict() if self.warm_rule is not None else None,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if isinstance(self.base, Plateau):
            self.base.load_state_dict(d["plateau"])
        if self.warm_rule is not None:
            self.warm_rule.load_state_dict(d["warm_rule"])


def milestone_steps(milestones: tuple[float, ...], total: int) -> list[int]:
    """Fractions of the run -> iterations (0.5, 0.75 of 64k -> 32k, 48k)."""
    return [round(m * total) for m in milestones]


def build_schedule(cfg: TrainConfig, total: int) -> Schedule:
    base: _Base
    if cfg.schedule == "multistep":
        base = MultiStep(cfg.lr, milestone_steps(cfg.milestones, total), cfg.gamma)
    elif cfg.schedule == "cosine":
        base = Cosine(cfg.lr, total, start=cfg.warmup_iterations)
    elif cfg.schedule == "linear":
        base = Linear(cfg.lr, total, start=cfg.warmup_iterations)
    elif cfg.schedule == "plateau":
        base = Plateau(cfg.lr, cfg.gamma, cfg.plateau_patience, cfg.plateau_threshold)
    else:
        base = Constant(cfg.lr)
    warm = WarmRule(cfg.warm_lr, cfg.warm_until_error) if cfg.uses_warm_rule else None
    return Schedule(base, cfg.warmup_iterations, warm)
