"""``--time-limit``: the run's length planned from this machine's measured speed, so that the whole run ends in time.

The run starts as any other; after its first steps (:data:`WARM_STEPS` skipped for compiling and
oneDNN's first calls, then at least :data:`MIN_MEASURED_STEPS` steps and :data:`MIN_MEASURED_S`
seconds timed) the trainer times a few validation batches of each protocol it will run and
:func:`plan_length` fixes the length: as many steps as fit in what is left of the limit after the
validations and the final test, less a safety margin. The recipe's schedule (warm-up, milestones
as fractions, decay to 0) is then built for that length. The plan is saved in the run's
config.json, so a resumed run keeps it (it never measures again).

At each validation the length is fitted again to the pace of the steps since the last one: shortened
where they ran slower than planned (other work on the machine, a CPU that throttles), lengthened where
they, and all the steps since the plan, ran faster (a new process's first steps are often slow; a
shortening for one slow epoch is undone). A change keeps the steps taken and spreads the rest of the
schedule over the new length (:class:`resnet.train.schedule.Reaimed`): the LR never jumps. A change
of less than :data:`REPLAN_BAND` is not made, unless the run would overrun the limit itself.

The steps taken before the plan ran with the LR of a provisional length (:data:`PROVISIONAL_EPOCHS`).
For the recipes this changes nothing (their first steps are a warm-up, or the LR is constant until
the first milestone); a decay without warm-up ran those few steps at an LR a fraction of a percent off.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from resnet.errors import ResNetError

WARM_STEPS = 3  # the first steps compile, allocate and pick kernels: not this machine's speed
MIN_MEASURED_STEPS = 10
MIN_MEASURED_S = 3.0
MAX_MEASURED_STEPS = 200  # a fast step: enough to average over, soon enough to plan
PROVISIONAL_EPOCHS = 1000  # the schedule's length until the plan is made (see the module's docstring)
SAFETY = 0.02  # of the limit, kept back for what the plan cannot see (the process start, the last save)
SAFETY_S = 5.0
MEASURED_SHARE = 0.01  # of a long limit, timed before the plan (at most MAX_MEASURED_S): a steadier mean
MAX_MEASURED_S = 30.0
REPLAN_BAND = 0.02  # of the length: a smaller change is left alone (the pace varies by about as much)


def measure_s(limit_s: float) -> float:
    """How many seconds of steps a plan for ``limit_s`` times at least."""
    return max(MIN_MEASURED_S, min(MEASURED_SHARE * limit_s, MAX_MEASURED_S))


def margin_s(limit_s: float) -> float:
    """What a plan keeps back of the limit, for what it cannot see (the process start, the last save)."""
    return max(SAFETY * limit_s, SAFETY_S)


def describe_duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``1.50 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


@dataclass(frozen=True)
class Costs:
    """What a run's parts cost on this machine, measured at the plan."""

    step_s: float  # one optimizer step, data loading included
    val_s: float  # one validation
    final_s: float  # the final evaluation (0 where it is the last validation again)


def validations(start: int, end: int, eval_every: int) -> int:
    """Validations after steps start+1 .. end: at every multiple of ``eval_every`` and at the end."""
    if end <= start:
        return 0
    count = end // eval_every - start // eval_every
    return count + (0 if end % eval_every == 0 else 1)


def plan_length(left_s: float, step: int, costs: Costs, eval_every: int) -> int:
    """The most steps in total (``step`` taken already) whose remaining steps, validations and final
    evaluation fit in ``left_s`` seconds; ``step`` if none fits. Validations before the end fall at
    multiples of ``eval_every``, whatever the length, and the last one at the end."""

    def fits(total: int) -> bool:
        spent = (total - step) * costs.step_s + validations(step, total, eval_every) * costs.val_s + costs.final_s
        return spent <= left_s + 1e-9  # a length that fits exactly is not lost to rounding

    # The time spent grows with the length: bisect for the longest that fits (the upper end is exclusive,
    # and one above the quotient, which may round down).
    low, high = step, step + max(int((left_s - costs.final_s) / costs.step_s), 0) + 2
    if not fits(low):
        return step
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


@dataclass(frozen=True)
class TimePlan:
    """A run's length as its time limit fixed it, kept in config.json (``resolved["time_plan"]``)."""

    limit_s: float
    iterations: int
    planned_at_step: int
    elapsed_s: float  # the run's time when the plan was made: start, data, model, first steps
    step_s: float
    images_per_s: float
    val_s: float
    validations: int
    final_s: float
    # [step, length before, length after] of each change at a validation (the schedule's, too):
    # shorter where the run fell behind its plan, longer where it was ahead.
    changes: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> TimePlan | None:
        if not isinstance(d, dict):
            return None
        # A run planned before the changes were recorded listed only their steps; its schedule was
        # rebuilt for each new length, which is what no changes give.
        d = {k: v for k, v in d.items() if k not in ("shortened_at", "lengthened_at")}
        try:
            return cls(**d)
        except TypeError:
            return None

    @property
    def expected_s(self) -> float:
        """The whole run's time as planned."""
        return (
            self.elapsed_s
            + (self.iterations - self.planned_at_step) * self.step_s
            + self.validations * self.val_s
            + self.final_s
        )

    def describe(self, steps_per_epoch: int) -> str:
        ends = time.strftime("%H:%M", time.localtime(time.time() + self.expected_s - self.elapsed_s))
        return (
            f"time limit {describe_duration(self.limit_s)}: {self.iterations / steps_per_epoch:.1f} epochs fit "
            f"({self.iterations} iterations): {self.images_per_s:,.0f} img/s measured, "
            f"{self.validations} validations ~{self.val_s:.1f} s each, final test ~{self.final_s:.0f} s, "
            f"{self.elapsed_s:.0f} s to start; ends ~{ends} (the run ~{describe_duration(self.expected_s)})"
        )


def make_plan(
    limit_s: float,
    elapsed_s: float,
    step: int,
    costs: Costs,
    eval_every: int,
    steps_per_epoch: int,
    batch_size: int,
    refuse_short: bool = True,
) -> TimePlan:
    """The plan for a run ``elapsed_s`` seconds in, or one line saying why no epoch fits (with
    ``refuse_short`` False: the plan anyway, as short as it comes out)."""
    left = limit_s - elapsed_s - margin_s(limit_s)
    total = plan_length(left, step, costs, eval_every)
    if total < steps_per_epoch and refuse_short:
        epoch_s = steps_per_epoch * costs.step_s + costs.val_s + costs.final_s
        need = elapsed_s + max(epoch_s - step * costs.step_s, 0) + margin_s(limit_s)
        raise ResNetError(
            f"option 'time-limit': {describe_duration(limit_s)} is too short for one epoch on this machine: "
            f"{batch_size / costs.step_s:,.0f} img/s measured, {steps_per_epoch} steps per epoch "
            f"(~{describe_duration(steps_per_epoch * costs.step_s)}), {elapsed_s:.0f} s to start; "
            f"give at least {describe_duration(need * 1.05)}"
        )
    return TimePlan(
        limit_s=limit_s,
        iterations=total,
        planned_at_step=step,
        elapsed_s=elapsed_s,
        step_s=costs.step_s,
        images_per_s=batch_size / costs.step_s,
        val_s=costs.val_s,
        validations=validations(step, total, eval_every),
        final_s=costs.final_s,
    )


class StepClock:
    """The times of the steps after the warm-up ones, until there are enough to plan from: at least
    :data:`MIN_MEASURED_STEPS` and ``min_s`` seconds of them (or :data:`MAX_MEASURED_STEPS`)."""

    def __init__(self, start_step: int, min_s: float | None = None) -> None:
        self.start_step = start_step
        self.min_s = MIN_MEASURED_S if min_s is None else min_s
        self.times: list[float] = []

    def add(self, step: int, seconds: float) -> None:
        if step > self.start_step + WARM_STEPS:
            self.times.append(seconds)

    @property
    def ready(self) -> bool:
        n = len(self.times)
        return n >= MAX_MEASURED_STEPS or (n >= MIN_MEASURED_STEPS and sum(self.times) >= self.min_s)

    @property
    def step_s(self) -> float:
        return sum(self.times) / len(self.times)


def check_limit(limit_s: float, elapsed_s: float) -> None:
    """Before the first step: a limit already spent on starting is one line, not a run."""
    if elapsed_s >= limit_s * (1 - SAFETY):
        raise ResNetError(
            f"option 'time-limit': {describe_duration(limit_s)} was spent before the first step "
            f"(data and model took {elapsed_s:.0f} s); give a longer limit"
        )
