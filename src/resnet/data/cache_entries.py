"""The entries of the cache folder: what it holds, chosen by key, and removing them.

Two kinds of entry live there, both named by a key that hashes the files they were made from:
decoded small-image folders (``images-<key>.npy`` + ``images-<key>.json``) and the mean images of
image-file training sets (``mean-<key>.npz``). Only files with these names (and the temporaries of
an interrupted write, ``.images-*.tmp`` / ``.mean-*.tmp``) are listed or removed: anything else in
the folder, such as a downloaded dataset, is left alone. Entries written before the source folder
and date were recorded show the source as unknown and the file's modification time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from resnet.errors import ResNetError

_ENTRY = re.compile(r"^\.?(images|mean)-([0-9a-f]+)(\.npy|\.json|\.npz)(\.\d+\.tmp)?$")


@dataclass
class CacheEntry:
    key: str
    kind: str  # "images" (a decoded folder) or "mean" (a mean image)
    files: list[Path] = field(default_factory=list)
    size: int = 0  # bytes on disk, all files together
    images: int | None = None
    source: str | None = None  # the folder the entry was made from (None: not recorded)
    created: str = ""  # ISO time, UTC
    complete: bool = True  # False: an interrupted write left only part of it


def _mtime_iso(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(entry: CacheEntry) -> None:
    """Fill in count, source and date from the entry's own files; unreadable files leave them unknown."""
    names = {p.name: p for p in entry.files}
    if entry.kind == "images":
        sidecar, data = names.get(f"images-{entry.key}.json"), names.get(f"images-{entry.key}.npy")
        entry.complete = sidecar is not None and data is not None
        if sidecar is not None:
            try:
                meta = json.loads(sidecar.read_text())
                entry.images, entry.source, entry.created = (
                    meta.get("count"),
                    meta.get("source"),
                    meta.get("created", ""),
                )
            except (OSError, ValueError, AttributeError):
                entry.complete = False
    else:
        data = names.get(f"mean-{entry.key}.npz")
        entry.complete = data is not None
        if data is not None:
            try:
                with np.load(data) as z:
                    entry.images = int(z["n"])
                    entry.source = str(z["source"]) if "source" in z.files else None
                    entry.created = str(z["created"]) if "created" in z.files else ""
            except (OSError, ValueError, KeyError):
                entry.complete = False
    if not entry.created:
        entry.created = _mtime_iso(max(entry.files, key=lambda p: p.stat().st_mtime))


def list_entries(cache_dir: str | Path) -> list[CacheEntry]:
    """Every entry in ``cache_dir``, oldest first (an absent folder holds none)."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    entries: dict[tuple[str, str], CacheEntry] = {}
    for path in sorted(cache_dir.iterdir()):
        m = _ENTRY.match(path.name)
        if m is None or not path.is_file():
            continue
        entry = entries.setdefault((m[1], m[2]), CacheEntry(m[2], m[1]))
        entry.files.append(path)
        entry.size += path.stat().st_size
    for entry in entries.values():
        _describe(entry)
    return sorted(entries.values(), key=lambda e: (e.created, e.kind, e.key))


def select(entries: list[CacheEntry], keys: list[str]) -> list[CacheEntry]:
    """The entries named by ``keys`` (whole keys or unique prefixes of at least 4 characters)."""
    chosen: list[CacheEntry] = []
    for key in keys:
        if len(key) < 4:
            raise ResNetError(f"cache key {key!r}: give at least 4 characters of a key from `resnet cache list`")
        matches = [e for e in entries if e.key.startswith(key)]
        if not matches:
            raise ResNetError(f"cache key {key!r}: no such entry (see `resnet cache list`)")
        if len({e.key for e in matches}) > 1:
            raise ResNetError(f"cache key {key!r}: matches {len(matches)} entries; give more characters")
        chosen += [e for e in matches if e not in chosen]
    return chosen


def remove(entries: list[CacheEntry]) -> int:
    """Delete the entries' files; the bytes freed."""
    freed = 0
    for entry in entries:
        for path in entry.files:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise ResNetError(f"cannot remove {path}: {e.strerror}") from None
        freed += entry.size
    return freed
