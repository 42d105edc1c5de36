"""Seeded train/validation splits, reproducible from the description saved with the run."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch

from resnet.errors import ResNetError

# The description lists the held-out indices when there are at most this many (the paper's 5,000 fit).
_LIST_LIMIT = 10_000


def val_count(n: int, val_split: float | int) -> int:
    """Images to hold out of ``n``: a whole count (>= 1, e.g. the paper's 5000) or a fraction in [0, 1)."""
    if isinstance(val_split, bool) or not math.isfinite(val_split) or val_split < 0:
        raise ResNetError(f"option 'val-split': {val_split} must be a count >= 1 or a fraction in [0, 1)")
    if isinstance(val_split, float) and val_split == 1.0:
        raise ResNetError("option 'val-split': 1.0 is ambiguous: write 1 for one image, or a fraction below 1")
    if val_split >= 1:
        if float(val_split) != int(val_split):
            raise ResNetError(f"option 'val-split': {val_split} is neither a whole count nor a fraction below 1")
        k = int(val_split)
    else:
        k = int(round(n * float(val_split)))
    if k >= n:
        raise ResNetError(f"option 'val-split': {val_split} leaves no training images out of {n}")
    return k


def split_indices(n: int, val_split: float | int, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(train indices, val indices, description): a seeded random permutation, the first k held out.

    Both index lists are sorted, so a split keeps the source order; the same (n, val_split, seed)
    gives the same split on any machine (numpy's PCG64 generator is specified bit for bit).
    """
    k = val_count(n, val_split)
    perm = np.random.default_rng(seed).permutation(n)
    val = np.sort(perm[:k])
    train = np.sort(perm[k:])
    desc: dict[str, Any] = {
        "method": "numpy.random.default_rng(seed).permutation(n); the first val_size indices are val",
        "seed": seed,
        "val_split": val_split,
        "source_size": n,
        "train_size": n - k,
        "val_size": k,
        "val_sha256": hashlib.sha256(val.astype("<i8").tobytes()).hexdigest(),
    }
    if k <= _LIST_LIMIT:
        desc["val_indices"] = val.tolist()
    return torch.from_numpy(train), torch.from_numpy(val), desc


def subset_indices(n: int, size: int, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """(sorted indices, description): ``size`` of ``n`` training images, a seeded random choice.

    The generator is seeded apart from the validation split's (``seed + 1``), so the subset is a fresh
    random draw rather than a shifted window of the split's permutation.
    """
    if isinstance(size, bool) or size < 1:
        raise ResNetError(f"option 'train-subset': {size} must be a count >= 1")
    if size > n:
        raise ResNetError(f"option 'train-subset': {size} is more than the {n} training images")
    keep = np.sort(np.random.default_rng(seed + 1).permutation(n)[:size])
    return torch.from_numpy(keep), {
        "train_subset": size,
        "train_size": size,
        "train_subset_sha256": hashlib.sha256(keep.astype("<i8").tobytes()).hexdigest(),
    }
