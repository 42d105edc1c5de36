"""Decoding one image file with Pillow, at reduced size where JPEG allows it."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from resnet.errors import ResNetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")
_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def shown(path: str | Path) -> str:
    """``path`` printable and JSON-safe: bytes of its name that are not UTF-8 as ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _unreadable(e: OSError) -> None:
    raise ResNetError(f"cannot read the folder {shown(e.filename)}: {e.strerror or e}")


def find_images(root: str | Path) -> list[str]:
    """Every file under ``root`` (recursively, hidden files and folders left out) whose name ends in one
    of ``IMAGE_EXTENSIONS``, in sorted path order. A folder that cannot be read is a ResNetError naming it."""
    found = []
    for folder, dirs, files in os.walk(root, onerror=_unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(folder, f) for f in files if not f.startswith(".") and is_image_name(f)]
    return sorted(found)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header alone; ResNetError naming the file if it is not an image."""
    try:
        with Image.open(path) as im:
            return im.size
    except _ERRORS as e:
        raise ResNetError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def decode_rgb(path: str | Path, min_side: int | None = None) -> np.ndarray:
    """The image as uint8 [H, W, 3].

    With ``min_side``, a JPEG is decoded by Pillow's ``draft`` at the smallest power-of-two reduction
    (1/2, 1/4, 1/8 in the DCT) whose shorter side is still at least ``min_side``: for a target much
    smaller than the file this skips most of the decoding work, and the caller's resize finishes it.
    A truncated or corrupt file raises ResNetError naming it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if min_side is not None and im.format == "JPEG":
                    w, h = im.size
                    scale = min_side / min(w, h)
                    if scale < 0.5:
                        im.draft("RGB", (max(1, int(np.ceil(w * scale))), max(1, int(np.ceil(h * scale)))))
                if im.mode in _SIXTEEN_BIT:
                    return _sixteen_bit_to_rgb(np.asarray(im))
                if im.mode == "F":
                    float_rgb = _float_to_rgb(np.asarray(im), path)
                    if float_rgb is not None:
                        return float_rgb
                rgb = im.convert("RGB")
                rgb.load()
                return np.asarray(rgb)
    except (*_ERRORS, Image.DecompressionBombWarning) as e:
        raise ResNetError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


# Grey images of more than 8 bits (16-bit PNG/TIFF) open in these modes; Pillow's convert("RGB") clips
# their 0..65535 values at 255 instead of scaling them, which turns most such images white.
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _sixteen_bit_to_rgb(grey: np.ndarray) -> np.ndarray:
    """0..65535 grey -> uint8 [H, W, 3] on 0..255 (v / 257 rounded: 65535 -> 255, 257 -> 1)."""
    scaled = np.rint(np.clip(grey.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(scaled[:, :, None], 3, axis=2))


def _float_to_rgb(grey: np.ndarray, path: str | Path) -> np.ndarray | None:
    """A 32-bit float grey image (TIFF mode ``F``): 0..1 values scaled to 0..255; ``None`` for 0..255
    values (Pillow's conversion reads those right); anything else refused, naming the file.

    Pillow's convert("RGB") clips floats at 0..255 without scaling, so a 0..1 image became black.
    """
    lo, hi = (float(grey.min()), float(grey.max())) if grey.size else (0.0, 0.0)
    if not np.isfinite(grey).all() or lo < 0 or hi > 255:
        raise ResNetError(
            f"{shown(path)}: a 32-bit float image with values in [{lo:g}, {hi:g}]; only 0..1 or 0..255 "
            "is understood (save it as 8 or 16 bits)"
        )
    if hi > 1:
        return None
    scaled = np.rint(grey.astype(np.float64) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(scaled[:, :, None], 3, axis=2))


def decode_tensor(path: str | Path, min_side: int | None = None) -> torch.Tensor:
    """The image as uint8 [3, H, W]."""
    return torch.from_numpy(decode_rgb(path, min_side).copy()).permute(2, 0, 1).contiguous()
