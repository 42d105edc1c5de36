"""Fitting a :class:`~resnet.data.normalization.Normalization` on a training set.

Tensor splits are summed in float64 in memory. For image files the mean image is 224x224 over the
centre views (shorter side 256), computed once by a process pool and cached by the file list.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch

from resnet.atomic_files import atomic_write
from resnet.data import cache as cache_mod
from resnet.data.bundle import DataBundle, FileSplit, TensorSplit
from resnet.data.images import decode_tensor
from resnet.data.normalization import MODES, Normalization
from resnet.data.transforms import center_view
from resnet.errors import ResNetError
from resnet.progress import progress

logger = logging.getLogger(__name__)

MEAN_SIZE = 224
_CHUNK = 64  # images per task of the mean-image pool


def _tensor_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel mean [C, H, W], per-channel mean and std [C], in float64 over chunks."""
    total = torch.zeros(images.shape[1:], dtype=torch.float64)
    sq = torch.zeros(images.shape[1], dtype=torch.float64)
    for chunk in images.split(4096):
        c = chunk.double()
        total += c.sum(0)
        sq += (c * c).sum(dim=(0, 2, 3))
    n = len(images)
    pixel_mean = total / n
    count = n * images.shape[2] * images.shape[3]
    ch_mean = total.sum(dim=(1, 2)) / count
    ch_std = (sq / count - ch_mean**2).clamp_min(1e-12).sqrt()
    return pixel_mean, ch_mean, ch_std


def _file_sums(paths: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    total = torch.zeros(3, MEAN_SIZE, MEAN_SIZE, dtype=torch.float64)
    sq = torch.zeros(3, dtype=torch.float64)
    for path in paths:
        x = center_view(decode_tensor(path, min_side=256), 256, MEAN_SIZE).double()
        total += x
        sq += (x * x).sum(dim=(1, 2))
    return total.numpy(), sq.numpy(), len(paths)


def _source_folder(paths: list[str]) -> str:
    """The folder the images share (recorded with the cache entry for ``resnet cache list``)."""
    try:
        return os.path.commonpath(sorted({os.path.dirname(os.path.abspath(p)) for p in paths}))
    except ValueError:  # no paths, or paths on different drives
        return ""


def file_statistics(
    split: FileSplit, cache_dir: Path, workers: int | None = None, quiet: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Like :func:`_tensor_stats` over the centre 224 views of image files; cached by the file list.

    Computing it takes minutes for a large training set: a progress bar counts the batches unless ``quiet``.
    """
    paths = [p for p, _ in split.samples]
    path = cache_dir / f"mean-{cache_mod.files_key(paths, extra=f'mean{MEAN_SIZE}')}.npz"
    if path.is_file():
        with np.load(path) as z:
            total, sq, n = z["total"], z["sq"], int(z["n"])
    else:
        workers = workers or min(os.cpu_count() or 1, 8)
        chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
        logger.info(
            "computing the %dx%d mean image of %d training images (once; cached in %s)",
            MEAN_SIZE,
            MEAN_SIZE,
            len(paths),
            cache_dir,
        )
        desc = f"mean image of {len(paths)} images, in batches of {_CHUNK}"
        if workers > 1 and len(chunks) > 1:
            # One thread per process: the pool already uses every core.
            with multiprocessing.get_context("fork").Pool(
                workers, initializer=torch.set_num_threads, initargs=(1,)
            ) as pool:
                parts = list(
                    progress(pool.imap(_file_sums, chunks), total=len(chunks), desc=desc, quiet=quiet, unit="batch")
                )
        else:
            parts = [_file_sums(c) for c in progress(chunks, desc=desc, quiet=quiet, unit="batch")]
        total = sum(p[0] for p in parts)
        sq = sum(p[1] for p in parts)
        n = sum(p[2] for p in parts)
        buf = io.BytesIO()
        np.savez(
            buf, total=total, sq=sq, n=n, source=np.array(_source_folder(paths)), created=np.array(cache_mod.now_iso())
        )
        atomic_write(path, buf.getvalue())
    pixel_mean = torch.from_numpy(np.asarray(total)) / n
    count = n * MEAN_SIZE * MEAN_SIZE
    ch_mean = pixel_mean.sum(dim=(1, 2)) * (MEAN_SIZE * MEAN_SIZE) / count
    ch_std = (torch.from_numpy(np.asarray(sq)) / count - ch_mean**2).clamp_min(1e-12).sqrt()
    return pixel_mean, ch_mean, ch_std


def fit_normalization(
    bundle_or_train_split: DataBundle | TensorSplit | FileSplit,
    mode: str,
    *,
    cache_dir: str | Path | None = None,
    quiet: bool = False,
) -> Normalization:
    """Fit ``mode`` on the training split (a bundle's ``train``, or the split given); ``quiet``: no
    progress bar while the mean image of image files is computed."""
    if mode not in MODES:
        raise ResNetError(f"unknown normalization {mode!r}; choose from {', '.join(MODES)}")
    split = bundle_or_train_split
    if isinstance(split, DataBundle):
        cache_dir = cache_dir or split.cache_dir
        split = split.train
    if mode == "none":
        return Normalization(mode)
    if isinstance(split, TensorSplit):
        pixel_mean, ch_mean, ch_std = _tensor_stats(split.images)
    else:
        pixel_mean, ch_mean, ch_std = file_statistics(
            split, Path(cache_dir or cache_mod.default_cache_dir()), quiet=quiet
        )
    if mode == "pixel-mean":
        return Normalization(mode, pixel_mean.float())
    return Normalization(mode, ch_mean.float(), ch_std.float())
