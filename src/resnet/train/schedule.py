"""Learning-rate schedules counted in iterations (optimizer steps), as the paper counts them.

``Schedule.lr(step)`` is the LR of optimizer step ``step`` (0-based). The schedules that react to
training (plateau, the ResNet-110 warm rule) keep their state in a JSON-serialisable dict, so a
resumed run takes exactly the same LR path as an uninterrupted one. A time-limited run whose length
changes on the way (:mod:`resnet.train.time_limit`) keeps the steps it has taken and spreads the rest
of its schedule over the new length (:class:`Reaimed`), so that its LR never jumps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from resnet.errors import ResNetError
from resnet.train.config import TrainConfig

# The schedules whose LR at a step depends on the run's length (the others ignore a new length).
LENGTH_SCHEDULES = ("multistep", "cosine", "linear")


class _Base(Protocol):
    def lr(self, step: float) -> float: ...


class MultiStep:
    """``lr * gamma**k`` after the k-th milestone (the paper: 0.1, /10 at 32k and 48k)."""

    def __init__(self, lr: float, milestones: list[int], gamma: float) -> None:
        self.base, self.milestones, self.gamma = lr, sorted(milestones), gamma

    def lr(self, step: float) -> float:
        return self.base * self.gamma ** sum(step >= m for m in self.milestones)

    def milestone_steps(self) -> list[int]:
        return list(self.milestones)


class Cosine:
    """Half a cosine from ``lr`` to 0 between ``start`` and ``total`` (beyond the paper)."""

    def __init__(self, lr: float, total: int, start: int = 0) -> None:
        self.base, self.total, self.start = lr, total, start

    def lr(self, step: float) -> float:
        t = min(max(step - self.start, 0) / max(self.total - self.start, 1), 1.0)
        return 0.5 * self.base * (1.0 + math.cos(math.pi * t))


class Linear:
    """A straight line from ``lr`` to 0 between ``start`` and ``total`` (beyond the paper; the decay
    that does best under a fixed training budget, Li et al. 2020, "Budgeted Training")."""

    def __init__(self, lr: float, total: int, start: int = 0) -> None:
        self.base, self.total, self.start = lr, total, start

    def lr(self, step: float) -> float:
        t = min(max(step - self.start, 0) / max(self.total - self.start, 1), 1.0)
        return self.base * (1.0 - t)


class Reaimed:
    """``inner``, planned for ``before`` steps, as it was up to step ``at``; the rest of it spread
    evenly over the steps from ``at`` to ``after``, a time-limited run's new length. The LR at ``at``
    is the one it had and what follows keeps its shape, stretched or squeezed: a linear or cosine
    decay goes on from there to 0 at ``after``; a milestone ahead moves in proportion, one passed
    stays passed. (Rebuilding the schedule for the new length instead would move the LR at ``at``:
    down where the run is shortened, up where it is lengthened, tenfold past a milestone.)"""

    def __init__(self, inner: _Base, at: int, before: int, after: int) -> None:
        self.inner, self.at = inner, at
        self.scale = (before - at) / max(after - at, 1)  # inner steps per step from ``at`` on

    def _inner_step(self, step: float) -> float:
        return step if step <= self.at else self.at + (step - self.at) * self.scale

    def lr(self, step: float) -> float:
        return self.inner.lr(self._inner_step(step))

    def milestone_steps(self) -> list[int]:
        """The first step at or past each of the inner schedule's milestones, by :meth:`lr`'s own arithmetic."""
        steps = []
        for m in self.inner.milestone_steps() if isinstance(self.inner, (MultiStep, Reaimed)) else []:
            s = m if m <= self.at else self.at + math.ceil((m - self.at) / self.scale)
            while s - 1 > self.at and self._inner_step(s - 1) >= m:
                s -= 1
            while self._inner_step(s) < m:
                s += 1
            steps.append(s)
        return steps


class Constant:
    def __init__(self, lr: float) -> None:
        self.base = lr

    def lr(self, step: float) -> float:
        return self.base


class Plateau:
    """Multiply the LR by ``gamma`` after ``patience`` validations without an improvement of at
    least ``threshold`` in validation error (the paper's ImageNet rule, "when the error plateaus")."""

    def __init__(self, lr: float, gamma: float, patience: int, threshold: float) -> None:
        self.gamma, self.patience, self.threshold = gamma, patience, threshold
        self.current, self.best, self.bad = lr, math.inf, 0

    def lr(self, step: float) -> float:
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

    def milestone_steps(self) -> list[int]:
        """The steps at which a multistep schedule's LR drops (none for the others)."""
        return self.base.milestone_steps() if isinstance(self.base, (MultiStep, Reaimed)) else []

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


def _base(cfg: TrainConfig, total: int) -> _Base:
    if cfg.schedule == "multistep":
        return MultiStep(cfg.lr, milestone_steps(cfg.milestones, total), cfg.gamma)
    if cfg.schedule == "cosine":
        return Cosine(cfg.lr, total, start=cfg.warmup_iterations)
    if cfg.schedule == "linear":
        return Linear(cfg.lr, total, start=cfg.warmup_iterations)
    if cfg.schedule == "plateau":
        return Plateau(cfg.lr, cfg.gamma, cfg.plateau_patience, cfg.plateau_threshold)
    return Constant(cfg.lr)


def check_length_changes(changes: Sequence[Sequence[int]], total: int) -> None:
    """One line unless each of ``changes`` (``at, before, after``) ends at the next one's ``before``, the
    last at ``total``, each made at a step before the length it changed."""
    nexts = [c[1] if len(c) > 1 else None for c in changes[1:]] + [total]
    if any(len(c) != 3 or c[2] != n or not 0 <= c[0] < c[1] for c, n in zip(changes, nexts)):
        raise ResNetError(f"the length changes {list(map(list, changes))} do not lead to {total} iterations")


def build_schedule(cfg: TrainConfig, total: int, changes: Sequence[Sequence[int]] = ()) -> Schedule:
    """The schedule of ``cfg`` for a run of ``total`` steps. ``changes``: ``(at, before, after)`` for
    each change of a time-limited run's length, in order (its first plan ``before`` the first one,
    ``total`` after the last): the schedule planned first, re-aimed at each (:class:`Reaimed`)."""
    if not changes or cfg.schedule not in LENGTH_SCHEDULES:
        base = _base(cfg, total)
    else:
        check_length_changes(changes, total)
        base = _base(cfg, changes[0][1])
        for at, before, after in changes:
            base = Reaimed(base, at, before, after)
    warm = WarmRule(cfg.warm_lr, cfg.warm_until_error) if cfg.uses_warm_rule else None
    return Schedule(base, cfg.warmup_iterations, warm)
