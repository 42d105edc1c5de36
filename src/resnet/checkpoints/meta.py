"""What a checkpoint's ``meta`` may contain, checked before anything is built from it.

A checkpoint is data from outside: a damaged or crafted header must give one line naming the file,
never a traceback, a hang (a 600,002-layer network) or a terabyte allocation (1e10 classes, a
60000x60000 mean image). The bounds are far beyond any network of the paper (see
:mod:`resnet.option_types`). Keys not listed here are allowed, so newer writers can add fields.
"""

from __future__ import annotations

import math
from typing import Any

from resnet.data.normalization import MODES
from resnet.data.transforms import PROTOCOLS, ImageNetView
from resnet.errors import ResNetError
from resnet.option_types import MAX_CHANNELS, MAX_CLASSES, MAX_DEPTH, MAX_SIDE


class MetaProblem(Exception):
    """One problem in the metadata; the caller adds the file name."""


def bounded_int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MetaProblem(f"{where} must be an integer in {low}..{high} (got {short_repr(value)})")
    return value


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite_numbers(value: Any, where: str, length: int) -> None:
    if (
        not isinstance(value, list)
        or len(value) != length
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise MetaProblem(f"{where} must be a list of {length} finite numbers")


def _check_normalization(norm: Any, channels: int) -> None:
    if not isinstance(norm, dict) or norm.get("mode") not in MODES:
        raise MetaProblem(f"meta 'normalization' must be an object with mode one of {', '.join(MODES)}")
    if norm["mode"] == "pixel-mean":
        shape = norm.get("shape")
        if not isinstance(shape, list) or len(shape) != 3:
            raise MetaProblem("meta 'normalization' shape must be [channels, height, width]")
        bounded_int(shape[0], "meta 'normalization' shape[0]", 1, MAX_CHANNELS)
        for side in shape[1:]:
            bounded_int(side, "meta 'normalization' image side", 1, MAX_SIDE)
        encoded = norm.get("mean_image_f32_b64")
        # base64 of float32: 4 bytes per value, 4 characters per 3 bytes
        expected = 4 * math.ceil(4 * shape[0] * shape[1] * shape[2] / 3)
        if not isinstance(encoded, str) or len(encoded) != expected:
            raise MetaProblem(
                f"meta 'normalization' mean image does not have the {shape[0]}x{shape[1]}x{shape[2]} "
                "values its shape says"
            )
    elif norm["mode"] == "channel":
        _finite_numbers(norm.get("mean"), "meta 'normalization' mean", channels)
        _finite_numbers(norm.get("std"), "meta 'normalization' std", channels)
        if any(s <= 0 for s in norm["std"]):
            raise MetaProblem("meta 'normalization' std must be positive")


def _check(meta: Any) -> None:
    from resnet.models.registry import get_spec

    if not isinstance(meta, dict):
        raise MetaProblem(f"meta must be a JSON object (got {type(meta).__name__})")
    for key in ("model", "model_options", "classes", "normalization"):
        if key not in meta:
            raise MetaProblem(f"meta has no {key!r}")
    if not isinstance(meta["model"], str):
        raise MetaProblem(f"meta 'model' must be a network name (got {short_repr(meta['model'])})")
    try:
        get_spec(meta["model"])
    except ResNetError as e:
        raise MetaProblem(f"meta 'model': {e}") from None
    options = meta["model_options"]
    if not isinstance(options, dict):
        raise MetaProblem("meta 'model_options' must be an object")
    num_classes = bounded_int(options.get("num_classes"), "meta 'model_options' num_classes", 1, MAX_CLASSES)
    channels = bounded_int(options.get("in_channels", 3), "meta 'model_options' in_channels", 1, MAX_CHANNELS)
    if "depth" in options:
        bounded_int(options["depth"], "meta 'model_options' depth", 1, MAX_DEPTH)
    classes = meta["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise MetaProblem("meta 'classes' must be a list of class names")
    if len(classes) != num_classes:
        raise MetaProblem(f"meta lists {len(classes)} classes but the network has {num_classes} outputs")
    _check_normalization(meta["normalization"], channels)
    size = meta.get("image_size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2:
            raise MetaProblem("meta 'image_size' must be [height, width] or null")
        for side in size:
            bounded_int(side, "meta 'image_size' side", 1, MAX_SIDE)
    for key in ("val_protocol", "eval_protocol"):
        if key in meta and meta[key] not in PROTOCOLS:
            raise MetaProblem(f"meta {key!r} must be one of {', '.join(PROTOCOLS)} (got {short_repr(meta[key])})")
    if "eval_view" in meta:
        try:
            ImageNetView.from_dict(meta["eval_view"])
        except (ResNetError, TypeError) as e:
            raise MetaProblem(f"meta 'eval_view': {e}") from None
    if meta.get("precision", "fp32") not in ("fp32", "bf16", "fp16"):
        raise MetaProblem(f"meta 'precision' must be fp32, bf16 or fp16 (got {short_repr(meta['precision'])})")
    if meta.get("eval_weights", "model") not in ("model", "ema"):
        raise MetaProblem(f"meta 'eval_weights' must be model or ema (got {short_repr(meta['eval_weights'])})")
    data = meta.get("data")
    if data is not None:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise MetaProblem("meta 'data' must be an object with the dataset's name")
        split = data.get("val_split")
        if split is not None and (
            isinstance(split, bool) or not isinstance(split, (int, float)) or not math.isfinite(split) or split < 0
        ):
            raise MetaProblem(f"meta 'data' val_split must be a count or fraction (got {short_repr(split)})")
        if "split_seed" in data:
            bounded_int(data["split_seed"], "meta 'data' split_seed", 0, 2**32 - 1)
        if data.get("train_subset") is not None:
            bounded_int(data["train_subset"], "meta 'data' train_subset", 1, 2**40)


def validate_meta(meta: Any, source: object) -> dict[str, Any]:
    """``meta`` if it can safely describe a network, else ResNetError naming ``source`` and the field."""
    try:
        _check(meta)
    except MetaProblem as e:
        raise ResNetError(f"{source}: damaged checkpoint, {e}") from None
    return meta
