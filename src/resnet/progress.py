"""Progress bars for everything that takes longer than a few seconds: one helper, one rule.

A bar is drawn on stderr only when a person can see it: not with ``--quiet`` (``quiet=True``) and not
when stderr is not a terminal (a log file, a pipe, CI), where tqdm's carriage returns would only
garble the output. ``force=True`` draws it regardless of the terminal (tests, notebooks).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")


def bars_enabled(quiet: bool = False, file: IO[str] | None = None) -> bool:
    """Whether a bar would be drawn on ``file`` (default: stderr): not quiet, and a terminal."""
    if quiet:
        return False
    stream = file if file is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str | None = None,
    quiet: bool = False,
    *,
    unit: str = "it",
    file: IO[str] | None = None,
    force: bool = False,
    leave: bool = False,
) -> Iterator[T] | Iterable[T]:
    """``iterable`` with a tqdm bar of ``total`` items (default: its length), or ``iterable`` itself
    when no bar is wanted (see the module docstring). ``quiet`` wins over ``force``."""
    if quiet or not (force or bars_enabled(False, file)):
        return iterable
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=file if file is not None else sys.stderr,
        leave=leave,
        dynamic_ncols=True,
        disable=False,
    )
