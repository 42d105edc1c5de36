"""The batches the measurements run on: the first N images of a loader, a training loader without end."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch


def first_images(batches: Iterable, images: int) -> Iterator[torch.Tensor]:
    """The first ``images`` images of an evaluation loader, as image batches."""
    seen = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if seen >= images:
            return
        x = x[: images - seen]
        seen += len(x)
        yield x


def endless(loader: Any) -> Iterator:
    """The train loader's batches epoch after epoch (each a fresh, seeded order)."""
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        yield from loader
