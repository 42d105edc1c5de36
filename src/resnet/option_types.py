"""Checked numbers for command-line options and config values: finite, in range, one meaning each.

The argparse ``type=`` functions below raise ``argparse.ArgumentTypeError``, which the ``resnet``
parser turns into one line naming the option; :func:`check_number` is the same rule for values
that come from a TOML file or a saved config, raising :class:`~resnet.errors.ResNetError`.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

# Seeds feed torch, numpy and Python's random; numpy's legacy seeding takes 32 bits at most.
MAX_SEED = 2**32 - 1
# The largest side an input image may have (ImageNet multi-scale testing uses 640).
MAX_SIDE = 4096
# Bounds on what a network may be built with: far beyond the paper (its deepest net has 1202
# layers, its widest output 1000 classes), small enough that a typo cannot hang or exhaust memory.
MAX_DEPTH = 2000
MAX_CLASSES = 100_000
MAX_CHANNELS = 64


def _number(text: str, integer: bool) -> float | int:
    try:
        value: float | int = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
    if not integer and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        value = int(_number(text, integer=True))
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"in {low}..{high}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def float_range(low: float, high: float | None = None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] ((low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        value = float(_number(text, integer=False))
        if value < low or (low_open and value == low) or (high is not None and value > high):
            span = f"{'(' if low_open else '['}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
            raise argparse.ArgumentTypeError(f"must be in {span}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_range(1)
seed_int = int_range(0, MAX_SEED)
image_side = int_range(1, MAX_SIDE)
depth_int = int_range(1, MAX_DEPTH)
classes_int = int_range(1, MAX_CLASSES)
channels_int = int_range(1, MAX_CHANNELS)


def val_split_value(text: str | float | int) -> float | int:
    """A held-out part of a training set: a fraction in (0, 1) or a whole count >= 1 (0 = none held out).

    ``1`` is one image and ``1.0`` is refused: as a fraction it would be every image, so it has no
    single reading. Counts are returned as int, fractions as float, so the saved config is unambiguous.
    """
    written = str(text).strip()
    value = float(_number(written, integer=False)) if isinstance(text, str) else float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {written}")
    as_float = isinstance(text, float) or (isinstance(text, str) and any(c in written for c in ".eE"))
    if value == 1.0 and as_float:
        raise argparse.ArgumentTypeError("1.0 is ambiguous: write 1 for one image, or a fraction below 1 such as 0.1")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1) or a whole count >= 1, got {written}")
    if value >= 1:
        if not value.is_integer():
            raise argparse.ArgumentTypeError(f"{written} is neither a whole count nor a fraction below 1")
        return int(value)
    return value


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def duration_seconds(text: str | float | int) -> float:
    """A length of time: ``90s``, ``30m``, ``1.5h``, ``1h30m`` or a bare number of seconds; positive."""
    written = str(text).strip().lower()
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        # Every number carries its unit, except a bare number alone ("1h30" is refused, not 1 h 30 s).
        bare = re.fullmatch(r"\d+(?:\.\d*)?", written)
        match = re.fullmatch(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?", written)
        if not written or (match is None and bare is None):
            raise argparse.ArgumentTypeError(f"must be a duration such as 90s, 30m, 1.5h or 1h30m, got {text!r}")
        if bare is not None:
            seconds = float(written)
        else:
            assert match is not None
            seconds = sum(float(v) * unit for v, unit in zip(match.groups(), _DURATION_UNITS.values()) if v)
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive duration, got {text!r}")
    return seconds
