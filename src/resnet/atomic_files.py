"""Files that are either complete or absent: the package's one atomic write.

Checkpoints, run files, caches and downloads all go through here: a crash at any moment leaves
either the previous file or the new one, never a torn one, and a full disk or an unwritable folder
is a one-line :class:`~resnet.errors.ResNetError` naming the file.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

# ``.<name>.<pid>.tmp``: the writer's pid in the name tells a dead writer's leftover from a live write.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")


def temp_path(path: str | Path, pid: int | None = None) -> Path:
    """Where process ``pid`` (default: this one) writes ``path`` before renaming it into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files of :func:`atomic_write` calls whose process died (``kill -9`` mid-write).

    A temp file of a live process (a write in progress, or a reused pid) is kept. Returns the removed paths.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or _alive(int(match["pid"])) or not entry.is_file():
            continue
        try:
            size = entry.stat().st_size
            entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            logger.warning("cannot remove the stale temporary file %s: %s", entry, e.strerror)
            continue
        logger.info(
            "removed %s (%.1f MB), left by process %s that died while writing %s",
            entry,
            size / 1e6,
            match["pid"],
            match["name"],
        )
        removed.append(entry)
    return removed


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
        view = view[os.write(fd, view) :]


def _why(e: OSError) -> str:
    return "disk full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))


class AppendFile:
    """A file that grows by whole lines only (``metrics.jsonl``, ``train.log``).

    Each :meth:`append` is one ``O_APPEND`` write of the whole text; if the write fails part way
    (a full disk), the file is cut back to its size before it, so a reader never sees half a line.
    Every failure, opening included, is a one-line :class:`ResNetError` naming the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise ResNetError(f"cannot write {self.path}: {_why(e)}") from None

    def append(self, text: str) -> None:
        if self.fd is None:
            raise ResNetError(f"cannot write {self.path}: already closed")
        size = os.fstat(self.fd).st_size
        try:
            _write_all(self.fd, text.encode())
        except OSError as e:
            try:
                os.ftruncate(self.fd, size)
            except OSError:
                logger.warning("%s: cannot cut back a partial line at byte %d", self.path, size)
            raise ResNetError(f"cannot append to {self.path}: {_why(e)}; the lines before are kept") from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def atomic_write(path: str | Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` atomically.

    The folder is created if needed. Temp file in the same folder, fsync, ``os.replace``, fsync of the folder.
    On failure the temp file is removed, the old file is untouched and a ResNetError says why ("disk full", ...).
    """
    path = Path(path)
    tmp = temp_path(path)
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
        kept = "; the previous file is kept" if path.exists() else ""
        raise ResNetError(f"cannot write {path}: {_why(e)}{kept}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
