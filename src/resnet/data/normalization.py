"""Input normalisation as a JSON-serialisable object, fitted on the training set.

- ``pixel-mean`` (the paper): ``(x - mean_image) / 255``: the per-pixel mean image of the training
  set is subtracted and pixels are put on the 0..1 scale. For image files the mean image is 224x224,
  computed once over the training set (shorter side 256, centre 224) and cached; inputs of another
  size (multi-scale testing) subtract the mean image resized to their size.
- ``channel``: ``(x - mean_c) / std_c`` with per-channel statistics of the training set (0..255 scale).
- ``none``: ``x / 255``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from resnet.data import cache as cache_mod
from resnet.data.bundle import DataBundle, FileSplit, TensorSplit
from resnet.data.images import decode_tensor
from resnet.data.transforms import center_view
from resnet.errors import ResNetError
from resnet.files import atomic_write
from resnet.progress import progress

logger = logging.getLogger(__name__)

MODES = ("pixel-mean", "channel", "none")
MEAN_SIZE = 224
_CHUNK = 64  # images per task of the mean-image pool


@dataclass
class Normalization:
    mode: str
    mean: torch.Tensor | None = None  # pixel-mean: [C, H, W]; channel: [C]; both on the 0..255 scale
    std: torch.Tensor | None = None   # channel: [C] on the 0..255 scale
    _resized: dict[Any, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ResNetError(f"unknown normalization {self.mode!r}; choose from {', '.join(MODES)}")

    def _mean_for(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._resized:
            assert self.mean is not None
            m = self.mean.to(device)
            if tuple(m.shape[-2:]) != (h, w):
                m = F.interpolate(m[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
            self._resized[key] = m
        return self._resized[key]

    def _shift_divisor(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """``apply(x) == (x.float() - shift) / divisor``, both broadcastable to [C, H, W]."""
        if self.mode == "pixel-mean":
            return self._mean_for(h, w, device), 255.0
        if self.mode == "channel":
            assert self.mean is not None and self.std is not None
            return self.mean.to(device)[:, None, None], self.std.to(device)[:, None, None]
        return 0.0, 255.0

    def shift_divisor(self, channels: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, divisor)`` as [C, H, W] float tensors with ``apply(x) == (x.float() - shift) / divisor``.

        The very numbers :meth:`apply` uses, so transforms that fold the normalisation into a gather
        (:class:`resnet.data.batched.PadCropFlipNormalize`) give bit-identical results.
        """
        shape = (channels, h, w)
        return tuple(torch.as_tensor(v, dtype=torch.float32, device=device).expand(shape)  # type: ignore[return-value]
                     for v in self._shift_divisor(h, w, device))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 normalised copy of ``x`` (uint8 or float on 0..255, [..., C, H, W])."""
        shift, divisor = self._shift_divisor(x.shape[-2], x.shape[-1], x.device)
        return (x.float() - shift) / divisor

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mode": self.mode}
        if self.mode == "pixel-mean":
            assert self.mean is not None
            d["shape"] = list(self.mean.shape)
            d["channel_mean"] = [round(v, 4) for v in self.mean.mean(dim=(1, 2)).tolist()]  # for people to read
            d["mean_image_f32_b64"] = base64.b64encode(self.mean.float().numpy().astype("<f4").tobytes()).decode()
        elif self.mode == "channel":
            assert self.mean is not None and self.std is not None
            d["mean"] = self.mean.tolist()
            d["std"] = self.std.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        mode = d.get("mode")
        try:
            if mode == "pixel-mean":
                raw = np.frombuffer(base64.b64decode(d["mean_image_f32_b64"]), dtype="<f4").reshape(d["shape"])
                return cls(mode, torch.from_numpy(raw.astype(np.float32)))
            if mode == "channel":
                return cls(mode, torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32))
        except (KeyError, ValueError, TypeError) as e:
            raise ResNetError(f"normalization {json.dumps(d)[:80]}...: malformed ({e})") from None
        return cls(str(mode))


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


def file_statistics(split: FileSplit, cache_dir: Path, workers: int | None = None,
                    quiet: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
        chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
        logger.info("computing the %dx%d mean image of %d training images (once; cached in %s)",
                    MEAN_SIZE, MEAN_SIZE, len(paths), cache_dir)
        desc = f"mean image of {len(paths)} images, in batches of {_CHUNK}"
        if workers > 1 and len(chunks) > 1:
            # One thread per process: the pool already uses every core.
            with multiprocessing.get_context("fork").Pool(workers, initializer=torch.set_num_threads,
                                                          initargs=(1,)) as pool:
                parts = list(progress(pool.imap(_file_sums, chunks), total=len(chunks), desc=desc, quiet=quiet,
                                      unit="batch"))
        else:
            parts = [_file_sums(c) for c in progress(chunks, desc=desc, quiet=quiet, unit="batch")]
        total = sum(p[0] for p in parts)
        sq = sum(p[1] for p in parts)
        n = sum(p[2] for p in parts)
        buf = io.BytesIO()
        np.savez(buf, total=total, sq=sq, n=n, source=np.array(_source_folder(paths)),
                 created=np.array(cache_mod.now_iso()))
        atomic_write(path, buf.getvalue())
    pixel_mean = torch.from_numpy(np.asarray(total)) / n
    count = n * MEAN_SIZE * MEAN_SIZE
    ch_mean = pixel_mean.sum(dim=(1, 2)) * (MEAN_SIZE * MEAN_SIZE) / count
    ch_std = (torch.from_numpy(np.asarray(sq)) / count - ch_mean**2).clamp_min(1e-12).sqrt()
    return pixel_mean, ch_mean, ch_std


def fit_normalization(bundle_or_train_split: DataBundle | TensorSplit | FileSplit, mode: str, *,
                      cache_dir: str | Path | None = None, quiet: bool = False) -> Normalization:
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
        pixel_mean, ch_mean, ch_std = file_statistics(split, Path(cache_dir or cache_mod.default_cache_dir()),
                                                      quiet=quiet)
    if mode == "pixel-mean":
        return Normalization(mode, pixel_mean.float())
    return Normalization(mode, ch_mean.float(), ch_std.float())
