"""Files that are either complete or absent: the package's one atomic write.

Checkpoints, run files, caches and downloads all go through here: a crash at any moment leaves
either the previous file or the new one, never a torn one, and a full disk or an unwritable folder
is a one-line :class:`~resnet.errors.ResNetError` naming the file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from resnet.errors import ResNetError


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: str | Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` atomically.

    The folder is created if needed. Temp file in the same folder, fsync, ``os.replace``, fsync of the folder. On failure the temp
    file is removed, the old file is untouched and a ResNetError says why ("disk full", ...).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if isinstance(data, bytes):
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            with os.fdopen(fd, "wb") as f:
                data(f)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        why = "disk full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        kept = "; the previous file is kept" if path.exists() else ""
        raise ResNetError(f"cannot write {path}: {why}{kept}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
