"""What a checkpoint's ``meta`` and training state may contain, checked before anything is built from them.

A checkpoint is data from outside: a damaged or crafted header must give one line naming the file,
never a traceback, a hang (a 600,002-layer network) or a terabyte allocation (1e10 classes, a
60000x60000 mean image). The bounds are far beyond any network of the paper (see
:mod:`resnet.option_types`). Keys not listed here are allowed, so newer writers can add fields.
"""

from __future__ import annotations

import math
from typing import Any

from resnet.data.normalization import MODES
from resnet.data.transforms import PROTOCOLS
from resnet.errors import ResNetError
from resnet.option_types import MAX_CHANNELS, MAX_CLASSES, MAX_DEPTH, MAX_SIDE


class _Bad(Exception):
    """One problem in the metadata; the caller adds the file name."""


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Bad(f"{where} must be an integer in {low}..{high} (got {_short(value)})")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite_numbers(value: Any, where: str, length: int) -> None:
    if (not isinstance(value, list) or len(value) != length
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise _Bad(f"{where} must be a list of {length} finite numbers")


def _check_normalization(norm: Any, channels: int) -> None:
    if not isinstance(norm, dict) or norm.get("mode") not in MODES:
        raise _Bad(f"meta 'normalization' must be an object with mode one of {', '.join(MODES)}")
    if norm["mode"] == "pixel-mean":
        shape = norm.get("shape")
        if not isinstance(shape, list) or len(shape) != 3:
            raise _Bad("meta 'normalization' shape must be [channels, height, width]")
        _int(shape[0], "meta 'normalization' shape[0]", 1, MAX_CHANNELS)
        for side in shape[1:]:
            _int(side, "meta 'normalization' image side", 1, MAX_SIDE)
        encoded = norm.get("mean_image_f32_b64")
        # base64 of float32: 4 bytes per value, 4 characters per 3 bytes
        expected = 4 * math.ceil(4 * shape[0] * shape[1] * shape[2] / 3)
        if not isinstance(encoded, str) or len(encoded) != expected:
            raise _Bad(f"meta 'normalization' mean image does not have the {shape[0]}x{shape[1]}x{shape[2]} "
                       "values its shape says")
    elif norm["mode"] == "channel":
        _finite_numbers(norm.get("mean"), "meta 'normalization' mean", channels)
        _finite_numbers(norm.get("std"), "meta 'normalization' std", channels)
        if any(s <= 0 for s in norm["std"]):
            raise _Bad("meta 'normalization' std must be positive")


def _check(meta: Any) -> None:
    from resnet.models.registry import get_spec

    if not isinstance(meta, dict):
        raise _Bad(f"meta must be a JSON object (got {type(meta).__name__})")
    for key in ("model", "model_options", "classes", "normalization"):
        if key not in meta:
            raise _Bad(f"meta has no {key!r}")
    if not isinstance(meta["model"], str):
        raise _Bad(f"meta 'model' must be a network name (got {_short(meta['model'])})")
    try:
        get_spec(meta["model"])
    except ResNetError as e:
        raise _Bad(f"meta 'model': {e}") from None
    options = meta["model_options"]
    if not isinstance(options, dict):
        raise _Bad("meta 'model_options' must be an object")
    num_classes = _int(options.get("num_classes"), "meta 'model_options' num_classes", 1, MAX_CLASSES)
    channels = _int(options.get("in_channels", 3), "meta 'model_options' in_channels", 1, MAX_CHANNELS)
    if "depth" in options:
        _int(options["depth"], "meta 'model_options' depth", 1, MAX_DEPTH)
    classes = meta["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _Bad("meta 'classes' must be a list of class names")
    if len(classes) != num_classes:
        raise _Bad(f"meta lists {len(classes)} classes but the network has {num_classes} outputs")
    _check_normalization(meta["normalization"], channels)
    size = meta.get("image_size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2:
            raise _Bad("meta 'image_size' must be [height, width] or null")
        for side in size:
            _int(side, "meta 'image_size' side", 1, MAX_SIDE)
    for key in ("val_protocol", "eval_protocol"):
        if key in meta and meta[key] not in PROTOCOLS:
            raise _Bad(f"meta {key!r} must be one of {', '.join(PROTOCOLS)} (got {_short(meta[key])})")
    if meta.get("eval_weights", "model") not in ("model", "ema"):
        raise _Bad(f"meta 'eval_weights' must be model or ema (got {_short(meta['eval_weights'])})")
    data = meta.get("data")
    if data is not None:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise _Bad("meta 'data' must be an object with the dataset's name")
        split = data.get("val_split")
        if split is not None and (isinstance(split, bool) or not isinstance(split, (int, float))
                                  or not math.isfinite(split) or split < 0):
            raise _Bad(f"meta 'data' val_split must be a count or fraction (got {_short(split)})")
        if "split_seed" in data:
            _int(data["split_seed"], "meta 'data' split_seed", 0, 2**32 - 1)
        if data.get("train_subset") is not None:
            _int(data["train_subset"], "meta 'data' train_subset", 1, 2**40)


def validate_meta(meta: Any, source: object) -> dict[str, Any]:
    """``meta`` if it can safely describe a network, else ResNetError naming ``source`` and the field."""
    try:
        _check(meta)
    except _Bad as e:
        raise ResNetError(f"{source}: damaged checkpoint, {e}") from None
    return meta


def _check_rng(rng: Any) -> None:
    """The shapes torch, Python's random and numpy need to restore their streams (not their values)."""
    import torch

    if not isinstance(rng, dict):
        raise _Bad("training state 'rng' must be an object of RNG states")
    t = rng.get("torch")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.shape != torch.get_rng_state().shape:
        raise _Bad("training state 'rng' torch must be a uint8 tensor of torch's RNG state size")
    py = rng.get("python")
    if (not isinstance(py, (list, tuple)) or len(py) != 3 or not isinstance(py[1], (list, tuple))
            or len(py[1]) != 625 or not all(isinstance(v, int) and 0 <= v < 2**32 for v in py[1])):
        raise _Bad("training state 'rng' python must be random.getstate()'s (version, 625 words, gauss)")
    npy = rng.get("numpy")
    if (not isinstance(npy, list) or len(npy) != 5 or not isinstance(npy[1], list) or len(npy[1]) != 624
            or not all(isinstance(v, int) and 0 <= v < 2**32 for v in npy[1])):
        raise _Bad("training state 'rng' numpy must be (kind, 624 words, pos, has_gauss, gauss)")


def validate_train_state(state: Any, total: int, source: object) -> None:
    """The resume state's scalar fields: a step within the schedule, a window of numbers, RNG states present.

    Tensors and optimizer buffers are checked by loading them (the caller turns failures into one line).
    """
    try:
        if not isinstance(state, dict):
            raise _Bad(f"training state must be an object (got {type(state).__name__})")
        for key in ("optimizer", "schedule", "step", "window", "rng"):
            if key not in state:
                raise _Bad(f"training state has no {key!r}")
        _int(state["step"], "training state 'step'", 0, total)
        window = state["window"]
        if not isinstance(window, dict):
            raise _Bad("training state 'window' must be an object")
        for key in ("loss", "errors", "count", "time"):
            value = window.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise _Bad(f"training state 'window' {key} must be a non-negative number (got {_short(value)})")
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        for rng in rngs:
            _check_rng(rng)
        best = state.get("best")
        if best is not None and (not isinstance(best, dict) or not isinstance(best.get("val_error"), (int, float))):
            raise _Bad("training state 'best' must be null or an object with val_error")
    except _Bad as e:
        raise ResNetError(f"{source}: damaged training state, {e}") from None
