"""The time a run has taken, summed over all its sessions.

Two clocks: wall time (everything in the training loop: steps, validations, checkpoints) and
training time (the optimizer steps alone, data loading included), which is what images/s is computed
from, so that a long validation does not make training look slow. The totals live in the ``last``
checkpoint, so a resumed run continues them; a checkpoint from before they were kept starts them at
zero, and ``steps`` then says how many of the run's steps the training time covers.
"""

from __future__ import annotations

import time
from typing import Any


class RunTime:
    def __init__(self, wall_s: float = 0.0, train_s: float = 0.0, steps: int = 0) -> None:
        self._wall_before, self.train_s, self.steps = wall_s, train_s, steps
        self._started = time.perf_counter()

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> RunTime:
        """Continue the totals saved in a checkpoint's training state (``None``: an older checkpoint)."""
        if not state:
            return cls()
        return cls(float(state["wall_s"]), float(state["train_s"]), int(state["steps"]))

    @property
    def wall_s(self) -> float:
        return self._wall_before + time.perf_counter() - self._started

    def add_step(self, seconds: float) -> None:
        self.train_s += seconds
        self.steps += 1

    def images_per_s(self, batch_size: int) -> float | None:
        return self.steps * batch_size / self.train_s if self.train_s > 0 else None

    def state_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "train_s": self.train_s, "steps": self.steps}
