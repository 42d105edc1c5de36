"""Small-image cache: a folder of tiny images decoded once into one uint8 ``.npy`` file.

Decoding 50,000 32x32 JPEGs every epoch costs more CPU than training on them. The first load decodes
every file (in a process pool) into ``<cache_dir>/images-<key>.npy`` ([N, 3, H, W] uint8) plus a
``.json`` sidecar (count, size, skipped files, source folder, creation time); later loads memory-map
it. The key hashes every file's path, size and mtime, so adding, removing or touching a file makes a
new cache entry; paths are those under the resolved folder (see ``sources._image_folder``), so a folder
named by a relative path, an absolute path or a symlink is one entry. Both files are written to a temporary
name, fsynced and renamed, so an interrupted build never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from resnet.atomic_files import atomic_write
from resnet.data.images import decode_rgb
from resnet.errors import ResNetError
from resnet.progress import progress

logger = logging.getLogger(__name__)

_VERSION = 1  # bump when the decoded pixels would change (decoder options, layout)


def default_cache_dir() -> Path:
    """``$RESNET_CACHE``, else ``$XDG_CACHE_HOME/resnet``, else ``~/.cache/resnet``."""
    if os.environ.get("RESNET_CACHE"):
        return Path(os.environ["RESNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resnet"


def now_iso() -> str:
    """The creation time recorded with a cache entry (UTC, to the second)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def files_key(paths: Iterable[str], extra: str = "") -> str:
    """A digest of each file's path, size and mtime (and ``extra``): changes when the folder does."""
    digest = hashlib.sha256(f"v{_VERSION}\n{extra}\n".encode())
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as e:  # a link that leads nowhere: the header reader names it (or skips it)
            digest.update(f"{path}\tunreadable {e.errno}\n".encode())
            continue
        digest.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _decode_or_error(path: str) -> tuple[np.ndarray | None, str | None]:
    try:
        return decode_rgb(path), None
    except ResNetError as e:
        return None, str(e)


def decode_all(paths: Sequence[str], workers: int) -> Iterable[tuple[np.ndarray | None, str | None]]:
    """(pixels, None) or (None, error) for every path, in order, decoded by ``workers`` processes."""
    if workers <= 1 or len(paths) < 256:
        return map(_decode_or_error, paths)
    pool = multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(workers)

    def results() -> Iterable[tuple[np.ndarray | None, str | None]]:
        with pool:
            yield from pool.imap(_decode_or_error, paths, chunksize=256)

    return results()


def load_cached(key: str, cache_dir: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The memory-mapped images and sidecar of ``key``, or None if there is no complete entry."""
    npy, meta = cache_dir / f"images-{key}.npy", cache_dir / f"images-{key}.json"
    if not (npy.is_file() and meta.is_file()):
        return None
    try:
        return np.load(npy, mmap_mode="r"), json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        logger.warning("%s: unreadable cache entry (%s); decoding again", npy, e)
        return None


def build_cache(
    key: str,
    cache_dir: Path,
    paths: Sequence[str],
    size: tuple[int, int],
    *,
    skip_bad_images: bool,
    workers: int,
    skipped: Sequence[str] = (),
    source: str | None = None,
    quiet: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode ``paths`` (all ``size`` = (H, W)) into the cache entry ``key``; return it memory-mapped.

    ``skipped``: files of the folder already left out (unreadable headers), recorded in the sidecar with
    those that fail to decode here, so that every later load leaves the same files out. ``source`` (the
    folder the images come from) and the creation time are recorded for ``resnet cache list``; a
    progress bar counts the decoded images unless ``quiet``.
    """
    h, w = size
    images = np.empty((len(paths), 3, h, w), dtype=np.uint8)
    skipped = list(skipped)
    n = 0
    decoded = progress(
        zip(paths, decode_all(paths, workers)),
        total=len(paths),
        quiet=quiet,
        unit="img",
        desc=f"decoding {len(paths)} images into the cache (once)",
    )
    for path, (pixels, error) in decoded:
        if pixels is not None and pixels.shape[:2] != (h, w):
            error = f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, the others are {w}x{h}"
        if error is not None:
            if not skip_bad_images:
                raise ResNetError(f"{error} (pass --skip-bad-images to leave unreadable images out)")
            skipped.append(path)
            continue
        assert pixels is not None  # decode_all gives (pixels, None) or (None, error)
        images[n] = pixels.transpose(2, 0, 1)
        n += 1
    images = images[:n]
    meta = {"version": _VERSION, "count": n, "size": [h, w], "skipped": skipped, "source": source, "created": now_iso()}
    # The sidecar goes first: an entry counts only once its .npy exists too.
    atomic_write(cache_dir / f"images-{key}.json", json.dumps(meta).encode())
    atomic_write(cache_dir / f"images-{key}.npy", lambda f: np.save(f, images))
    logger.info("decoded %d images into %s", n, cache_dir / f"images-{key}.npy")
    return np.load(cache_dir / f"images-{key}.npy", mmap_mode="r"), meta
