"""``--compile auto``: ``torch.compile`` where it pays, on this machine, for this run's length.

Compiling costs time once and makes every later step faster by a fraction that depends on the
device and the precision. The run starts eager; after its first steps are timed, :func:`worth_trying`
weighs the steps still to come against what compiling gained and cost where it was measured
(:data:`MEASURED`). If it is worth trying, the step is compiled, and once the compiled steps are
timed and the eager ones timed again, they are kept only if they are faster than the eager ones: the
estimate decides whether to pay for compiling, the measurement whether to keep it. Every decision
is one log line, and the run's config.json records the outcome, which a resume takes as it is. A
trial measured on this machine for a run of the same kind (:mod:`resnet.train.compile_memory`)
replaces the table's estimate: where compiling lost, it is not tried again.
"""

from __future__ import annotations

from dataclasses import dataclass

from resnet.device import Speed
from resnet.train.compile_memory import CompileMemory, Trial
from resnet.train.time_limit import StepClock, describe_duration

# (device type, precision) -> (fraction of the step time compiling saves, seconds it takes), for the
# paper's CIFAR networks: what decides whether compiling is worth trying. Measured (benchmarks/RESULTS.md):
# bf16 autocast on 2 AVX-512 BF16 cores, +24% on an Intel Sapphire Rapids, about a minute of compiling;
# on an AMD EPYC Zen 5 +17% against eager NCHW but 1.02x against the eager channels-last step the
# trainer takes (benchmarks/bench_levers.py, 2026-11-23 and 2026-12-02), and 0.98x in the trainer's
# own step (a 30-minute ResNet-20 run, 2026-12-01); float32 on 2 cores, +5%
# on both an AVX2-only Zen 1 and the Zen 5, minutes of compiling. CUDA was not measured here; its
# figure is a guess. Whatever the table says, the compiled step is kept only where it is measured faster.
MEASURED: dict[tuple[str, str], tuple[float, float]] = {
    ("cpu", "bf16"): (0.15, 60.0),
    ("cpu", "fp32"): (0.05, 120.0),
    ("cuda", "bf16"): (0.20, 90.0),
    ("cuda", "fp16"): (0.20, 90.0),
    ("cuda", "fp32"): (0.20, 90.0),
}
PAYS_TWICE = 2.0  # compile only where the expected saving is at least twice the expected cost


def worth_trying(speed: Speed, remaining_s: float, speedup: float | None = None) -> tuple[bool, str]:
    """Whether compiling is expected to pay back over ``remaining_s`` seconds of steps, and why.
    ``speedup``: eager over compiled step time as measured on this machine (replaces the table's gain)."""
    known = MEASURED.get((speed.device.type, speed.precision))
    if known is None:
        return False, f"no measurement of compiling on {speed.device.type} with {speed.precision}"
    gain, cost = known
    where = f"on {speed.device.type} with {speed.precision}"
    if speedup is not None:
        gain, where = 1.0 - 1.0 / speedup, f"{where}, its step as measured on this machine"
    saving = gain * remaining_s
    why = (
        f"~{describe_duration(remaining_s)} of steps left; compiling saves ~{100 * gain:.0f}% of a step "
        f"and costs ~{describe_duration(cost)} {where}"
    )
    return saving >= PAYS_TWICE * cost, why


@dataclass
class Verdict:
    """What the trainer does after a step: compile the step, go back to eager, or nothing."""

    action: str  # "compile", "eager" or ""
    line: str = ""


class AutoCompile:
    """The decision's state: timing the eager steps, then the compiled ones, then the eager ones again
    (the faster eager timing counts), then done (``outcome``).

    The trainer feeds ``clock`` and, once it is ready (on every process), calls :meth:`decide` with the
    measured step time (the slowest process's). ``memory`` and ``key``: where this machine's trials are
    kept and this run's kind; ``keeps``: this process writes the trial it measures (the main one)."""

    def __init__(
        self, start_step: int, memory: CompileMemory | None = None, key: str = "", *, keeps: bool = True
    ) -> None:
        self.phase = "eager"
        self.clock = StepClock(start_step)
        self.eager_s = self.compiled_s = 0.0
        self.outcome: str | None = None  # "on" or "off" once decided
        self.memory, self.key, self.keeps = memory, key, keeps
        self.recalled: Trial | None = memory.recall(key) if memory is not None else None

    def decide(
        self, step: int, step_s: float, speed: Speed, remaining_s: float, speedup: float | None = None
    ) -> Verdict:
        """``step_s``: the step time the clock measured; ``remaining_s``: the steps' time left (at the eager
        pace, or what a time limit leaves); ``speedup``: a trial of this kind measured earlier (every
        process's the same: the trainer agrees it), None if there is none."""
        if self.phase == "eager":
            self.eager_s = step_s
            if speedup is not None and speedup <= 1.0:
                self.outcome = "off"
                return Verdict("", f"compile auto: off ({self._earlier(speedup)})")
            pays, why = worth_trying(speed, remaining_s, speedup)
            if not pays:
                self.outcome = "off"
                return Verdict("", f"compile auto: off ({why})")
            self.phase, self.clock = "compiled", StepClock(step)
            return Verdict("compile", f"compile auto: compiling the step ({why})")
        if self.phase == "compiled":
            # The first eager steps of a process can be slower than its later ones (measured: 293 ms
            # against 250 for ResNet-56), which would credit compiling with a gain it does not have.
            self.compiled_s, self.phase, self.clock = step_s, "eager again", StepClock(step)
            return Verdict("eager", f"compile auto: compiled steps {1000 * step_s:.1f} ms; timing the eager step again")
        self.eager_s = min(self.eager_s, step_s)  # the faster of the two eager timings
        faster = self.compiled_s < self.eager_s
        self.outcome = "on" if faster else "off"
        if self.memory is not None and self.keeps:
            self.memory.remember(self.key, self.eager_s, self.compiled_s)
        line = (
            f"compile auto: {'kept' if faster else 'off again'}: compiled steps {1000 * self.compiled_s:.1f} ms, "
            f"eager {1000 * self.eager_s:.1f} ms ({self.eager_s / self.compiled_s:.2f}x)"
        )
        return Verdict("compile" if faster else "", line)

    def _earlier(self, speedup: float) -> str:
        assert self.memory is not None  # a speedup comes from a memory
        when = f" on {self.recalled.measured}" if self.recalled is not None else ""
        return (
            f"its compiled step was {speedup:.2f}x the eager one when this run's kind was tried on this "
            f"machine{when}; delete {self.memory.path} to try again"
        )
