"""The resumable state of a run, and everything about resuming: one object, read, checked and written here.

Everything a resumed run needs to take exactly the same path is in the ``last`` checkpoint: weights,
optimizer buffers, schedule state, step, RNG states of torch/numpy/python/CUDA, EMA, best metric,
and the running sums of the current metrics window. The data order is a pure function of
(seed, epoch, rank), so restoring the step restores the batches.

Like the metadata (:mod:`resnet.checkpoints.meta`), the state is data from outside: a damaged or
crafted one gives one line naming the file, never a traceback from deep inside the optimizer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnet import checkpoints as ck
from resnet.checkpoints.meta import MetaProblem, bounded_int, short_repr
from resnet.errors import ResNetError
from resnet.train import config as config_mod
from resnet.train.config import TrainConfig
from resnet.train.schedule import LENGTH_SCHEDULES, check_length_changes


@dataclass
class MetricWindow:
    """Running sums of the steps since the last log line, kept on the device (no sync per step)."""

    loss: torch.Tensor
    errors: torch.Tensor
    count: int = 0
    time: float = 0.0

    @classmethod
    def empty(cls, device: torch.device) -> MetricWindow:
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """``labels``: class indices, or class probabilities [B, classes] (mixup, CutMix: an error is
        then a prediction other than the class of largest weight)."""
        if labels.ndim == 2:
            labels = labels.argmax(1)
        self.loss += loss * len(labels)
        self.errors += (logits.argmax(1) != labels).sum()
        self.count += len(labels)

    def to_dict(self) -> dict[str, Any]:
        return {"loss": float(self.loss), "errors": int(self.errors), "count": self.count, "time": self.time}

    @classmethod
    def from_dict(cls, w: dict[str, Any], device: torch.device) -> MetricWindow:
        return cls(
            torch.tensor(w["loss"], device=device),
            torch.tensor(w["errors"], device=device),
            int(w["count"]),
            float(w["time"]),
        )


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # the legacy form: the global generator is an MT19937
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], [int(v) for v in np_state[1]], int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """Where a run is: the step, the best validation so far and the current metrics window.

    With the optimizer, schedule and scaler (whose own ``state_dict`` s it packs) it is all a resume needs.
    """

    window: MetricWindow
    step: int = 0
    best: dict[str, Any] | None = None

    def to_checkpoint(
        self,
        *,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        scaler: Any,
        steps_per_epoch: int,
        accum: int,
        rng: Any,
        time: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "step": self.step,
            "epoch": self.step // steps_per_epoch,
            "batch_index": (self.step % steps_per_epoch) * accum,
            "best": self.best,
            "window": self.window.to_dict(),
            "rng": rng,
            "time": time,
        }

    def restore(
        self,
        state: dict[str, Any],
        *,
        total: int,
        where: object,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        scaler: Any,
        rank: int,
        device: torch.device,
    ) -> None:
        """Check the whole of ``state``, then load it: a damaged one is one line naming ``where``."""
        validate_train_state(state, total, where)
        try:
            check_optimizer_state(state["optimizer"], optimizer)
            check_schedule_state(state["schedule"], schedule)
        except MetaProblem as e:
            raise ResNetError(f"{where}: damaged training state, {e}") from None
        try:
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            self.step = int(state["step"])
            self.best = state["best"]
            self.window = MetricWindow.from_dict(state["window"], device)
            set_rng_state(state["rng"][rank] if isinstance(state["rng"], list) else state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, OverflowError) as e:
            if isinstance(e, ResNetError):
                raise
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
            raise ResNetError(f"{where}: damaged training state ({type(e).__name__}: {first})") from None


@dataclass
class ResumePoint:
    """A run folder read for resuming: its config, the length it had planned, its ``last`` checkpoint."""

    cfg: TrainConfig
    planned: int | None  # the iterations in config.json
    last: ck.Checkpoint
    time_plan: dict[str, Any] | None = None  # how --time-limit fixed ``planned`` (config.json)
    compiled: str | None = None  # what --compile auto decided: "on", "off", None (undecided)

    @property
    def step(self) -> int:
        return int(self.last.state["step"])  # type: ignore[index]


def read_resume_point(
    run_dir: Path,
    world_size: int,
    iterations: int | None = None,
    epochs: float | None = None,
    quiet: bool | None = None,
) -> ResumePoint:
    """Everything checked before the data and the model are built; ``iterations``/``epochs``: a new length;
    ``quiet``: the progress bars of this session (a display option, not part of the run)."""
    if not (run_dir / "config.json").is_file():
        raise ResNetError(f"--resume {run_dir}: not a run folder (no config.json)")
    if not (run_dir / ck.LAST).is_file():
        raise ResNetError(f"--resume {run_dir}: no {ck.LAST} to resume from (the run saved no checkpoint yet)")
    cfg, resolved = config_mod.read_run_config(run_dir / "config.json")
    saved_world = resolved.get("world_size", 1)
    if saved_world != world_size:
        raise ResNetError(
            f"--resume {run_dir}: the run used {saved_world} process(es); resume it with "
            f"--nproc {saved_world} so every process sees the same data"
        )
    last = ck.load_checkpoint(run_dir / ck.LAST)
    if last.state is None:
        raise ResNetError(f"--resume {run_dir}: {ck.LAST} holds no training state")
    planned = resolved.get("iterations")
    if isinstance(planned, int):
        validate_train_state(last.state, planned, run_dir / ck.LAST)
    time_plan = resolved.get("time_plan") if cfg.time_limit is not None else None
    if iterations is not None or epochs is not None:
        # A new length given: it replaces the time limit's plan as it would replace --epochs.
        cfg = cfg.replace(iterations=iterations, epochs=cfg.epochs if epochs is None else epochs, time_limit=None)
        time_plan = None
    elif cfg.time_limit is not None and not isinstance(planned, int):
        raise ResNetError(f"--resume {run_dir}: config.json holds no planned length of its --time-limit run")
    if isinstance(time_plan, dict) and isinstance(planned, int) and cfg.schedule in LENGTH_SCHEDULES:
        try:  # the schedule of a plan that changed follows its changes: they must add up to its length
            check_length_changes(time_plan.get("changes", []), planned)
        except (ResNetError, TypeError) as e:
            raise ResNetError(f"{run_dir / 'config.json'}: time_plan: {e}") from None
    if quiet is not None:
        cfg = cfg.replace(quiet=quiet)
    compiled = resolved.get("compile_auto") if resolved.get("compile_auto") in ("on", "off") else None
    return ResumePoint(cfg, planned if isinstance(planned, int) else None, last, time_plan, compiled)


def check_new_length(
    point: ResumePoint, run_dir: Path, total: int, iterations: int | None, epochs: float | None
) -> None:
    """A new length must be longer than the steps already taken."""
    if (iterations is not None or epochs is not None) and total <= point.step:
        given = f"--iterations {iterations}" if iterations is not None else f"--epochs {epochs:g}"
        raise ResNetError(
            f"--resume {run_dir} {given}: that is {total} iterations, but the run has "
            f"taken {point.step} already; give a longer length to extend it"
        )


def _check_rng(rng: Any) -> None:
    """The shapes torch, Python's random and numpy need to restore their streams (not their values)."""
    if not isinstance(rng, dict):
        raise MetaProblem("training state 'rng' must be an object of RNG states")
    t = rng.get("torch")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.shape != torch.get_rng_state().shape:
        raise MetaProblem("training state 'rng' torch must be a uint8 tensor of torch's RNG state size")
    py = rng.get("python")
    if (
        not isinstance(py, (list, tuple))
        or len(py) != 3
        or not isinstance(py[1], (list, tuple))
        or len(py[1]) != 625
        or not all(isinstance(v, int) and 0 <= v < 2**32 for v in py[1])
    ):
        raise MetaProblem("training state 'rng' python must be random.getstate()'s (version, 625 words, gauss)")
    npy = rng.get("numpy")
    if (
        not isinstance(npy, list)
        or len(npy) != 5
        or not isinstance(npy[1], list)
        or len(npy[1]) != 624
        or not all(isinstance(v, int) and 0 <= v < 2**32 for v in npy[1])
    ):
        raise MetaProblem("training state 'rng' numpy must be (kind, 624 words, pos, has_gauss, gauss)")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_optimizer_state(saved: Any, optimizer: torch.optim.Optimizer) -> None:
    """The optimizer's groups and per-parameter buffers match the network's parameters, shape for shape
    (``load_state_dict`` takes a buffer of another shape silently; the first step would then fail)."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        raise MetaProblem("training state 'optimizer' must be an optimizer state_dict (state, param_groups)")
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise MetaProblem(
            f"training state 'optimizer' has {len(groups) if isinstance(groups, list) else 'no'} parameter "
            f"groups, the network's optimizer {len(optimizer.param_groups)}"
        )
    params: dict[int, torch.Tensor] = {}
    for i, (group, ours) in enumerate(zip(groups, optimizer.param_groups)):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(ours["params"]):
            raise MetaProblem(
                f"training state 'optimizer' group {i} must list {len(ours['params'])} parameters "
                f"(got {short_repr(ids)})"
            )
        for key in ("lr", "momentum", "weight_decay"):
            if key in ours and not _number(group.get(key)):
                raise MetaProblem(f"training state 'optimizer' group {i} {key} must be a number")
        for pid, param in zip(ids, ours["params"]):
            if isinstance(pid, bool) or not isinstance(pid, int) or pid in params:
                raise MetaProblem(f"training state 'optimizer' group {i}: parameter ids must be distinct integers")
            params[pid] = param
    for pid, buffers in saved["state"].items():
        if pid not in params:
            raise MetaProblem(
                f"training state 'optimizer' has buffers for parameter {short_repr(pid)}, which no group lists"
            )
        if not isinstance(buffers, dict):
            raise MetaProblem(f"training state 'optimizer' buffers of parameter {pid} must be an object")
        for name, value in buffers.items():
            if name != "momentum_buffer":
                raise MetaProblem(f"training state 'optimizer' parameter {pid}: unknown buffer {short_repr(name)}")
            if value is None:
                continue
            shape = tuple(params[pid].shape)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape or not value.is_floating_point():
                got = f"shape {list(value.shape)}" if isinstance(value, torch.Tensor) else short_repr(value)
                raise MetaProblem(
                    f"training state 'optimizer' momentum buffer of parameter {pid} must be a float "
                    f"tensor of shape {list(shape)} (got {got})"
                )


def check_schedule_state(saved: Any, schedule: Any) -> None:
    """Exactly the fields the run's LR schedule keeps (see :meth:`Schedule.state_dict`), each of its type."""
    expected = schedule.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(expected):
        keys = ", ".join(sorted(expected))
        got = ", ".join(sorted(map(str, saved))) if isinstance(saved, dict) else short_repr(saved)
        raise MetaProblem(f"training state 'schedule' must have the fields {keys} (got {got or 'none'})")
    for part, fields in expected.items():
        value = saved[part]
        if fields is None:
            if value is not None:
                raise MetaProblem(f"training state 'schedule' {part} must be null: this run's schedule has none")
            continue
        if not isinstance(value, dict) or set(value) != set(fields):
            raise MetaProblem(f"training state 'schedule' {part} must have the fields {', '.join(sorted(fields))}")
        for name, v in value.items():
            ok = {
                "current": _number(v) and v >= 0,
                "best": v is None or (_number(v) and v >= 0),
                "bad": isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                "active": isinstance(v, bool),
                "ended_at": v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0),
            }.get(name, False)
            if not ok:
                raise MetaProblem(f"training state 'schedule' {part} {name}: {short_repr(v)} is not valid")


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
                raise MetaProblem(
                    f"training state 'window' {key} must be a non-negative number (got {short_repr(value)})"
                )
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        for rng in rngs:
            _check_rng(rng)
        best = state.get("best")
        if best is not None and (not isinstance(best, dict) or not isinstance(best.get("val_error"), (int, float))):
            raise MetaProblem("training state 'best' must be null or an object with val_error")
    except MetaProblem as e:
        raise ResNetError(f"{source}: damaged training state, {e}") from None
