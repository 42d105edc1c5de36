"""What the training state of a ``last`` checkpoint may contain, checked before a run resumes from it.

Like the metadata (:mod:`resnet.checkpoints.meta`), the state is data from outside: a damaged or
crafted one gives one line naming the file, never a traceback from deep inside the optimizer.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from resnet.checkpoints.meta import MetaProblem, bounded_int, short_repr
from resnet.errors import ResNetError


def _check_rng(rng: Any) -> None:
    """The shapes torch, Python's random and numpy need to restore their streams (not their values)."""
    if not isinstance(rng, dict):
        raise MetaProblem("training state 'rng' must be an object of RNG states")
    t = rng.get("torch")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.shape != torch.get_rng_state().shape:
        raise MetaProblem("training state 'rng' torch must be a uint8 tensor of torch's RNG state size")
    py = rng.get("python")
    if (not isinstance(py, (list, tuple)) or len(py) != 3 or not isinstance(py[1], (list, tuple))
            or len(py[1]) != 625 or not all(isinstance(v, int) and 0 <= v < 2**32 for v in py[1])):
        raise MetaProblem("training state 'rng' python must be random.getstate()'s (version, 625 words, gauss)")
    npy = rng.get("numpy")
    if (not isinstance(npy, list) or len(npy) != 5 or not isinstance(npy[1], list) or len(npy[1]) != 624
            or not all(isinstance(v, int) and 0 <= v < 2**32 for v in npy[1])):
        raise MetaProblem("training state 'rng' numpy must be (kind, 624 words, pos, has_gauss, gauss)")


def validate_train_state(state: Any, total: int, source: object) -> None:
    """The resume state's scalar fields: a step within the schedule, a window of numbers, RNG states present.

    Tensors and optimizer buffers are checked by loading them (the caller turns failures into one line).
    """
    try:
        if not isinstance(state, dict):
            raise MetaProblem(f"training state must be an object (got {type(state).__name__})")
        for key in ("optimizer", "schedule", "step", "window", "rng"):
            if key not in state:
                raise MetaProblem(f"training state has no {key!r}")
        bounded_int(state["step"], "training state 'step'", 0, total)
        window = state["window"]
        if not isinstance(window, dict):
            raise MetaProblem("training state 'window' must be an object")
        for key in ("loss", "errors", "count", "time"):
            value = window.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise MetaProblem(f"training state 'window' {key} must be a non-negative number (got {short_repr(value)})")
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        for rng in rngs:
            _check_rng(rng)
        best = state.get("best")
        if best is not None and (not isinstance(best, dict) or not isinstance(best.get("val_error"), (int, float))):
            raise MetaProblem("training state 'best' must be null or an object with val_error")
    except MetaProblem as e:
        raise ResNetError(f"{source}: damaged training state, {e}") from None
