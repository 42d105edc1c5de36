"""A run folder belongs to one training at a time, and a new run never lands on top of an old one.

:meth:`RunFolder.claim` takes an exclusive ``flock`` on ``<run>/.lock`` for as long as the training
runs. The operating system drops the lock when the process exits, however it exits (``kill -9``
included), so a killed run never leaves a stale lock behind. A new run refuses a folder that already
holds a run unless it is told to overwrite it, and every claim removes the temporary files of writes
that died half-way (see :func:`resnet.atomic_files.remove_stale_temp_files`). Under DDP only the main
process claims the folder: it alone writes there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from resnet.atomic_files import remove_stale_temp_files
from resnet.checkpoints import BEST, LAST
from resnet.errors import ResNetError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not protected against a second training
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK = ".lock"
# What a run writes into its folder, and the exports `resnet export` puts beside its checkpoints.
RUN_FILES = (
    "config.json",
    "classes.json",
    "normalization.json",
    "split.json",
    "metrics.jsonl",
    "train.log",
    "summary.json",
    LAST,
    BEST,
)
RUN_FOLDERS = ("tensorboard",)
EXPORTS = tuple(f"{stem}{suffix}" for stem in ("best", "last", "model") for suffix in (".pt", ".onnx", ".onnx.data"))
# Any one of these marks a folder as holding a run (a bare folder, or one with other files, does not).
MARKERS = ("config.json", "metrics.jsonl", LAST, BEST, "summary.json")


def holds_run(path: Path) -> bool:
    return any((path / name).exists() for name in MARKERS)


def finished_summary(path: Path) -> dict[str, Any] | None:
    """The summary of a run that has reached the length in its config, else None.

    ``summary.json`` is written when a run ends and deleted when a resumed run is made longer, so a
    summary for the configured number of iterations means there is nothing left to do.
    """
    try:
        summary = json.loads((path / "summary.json").read_text())
        planned = json.loads((path / "config.json").read_text())["resolved"]["iterations"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return summary if isinstance(summary, dict) and summary.get("iterations") == planned else None


def clear_run(path: Path) -> None:
    """Delete a run's files (and exports of its checkpoints); anything else in the folder stays."""
    for name in RUN_FILES + EXPORTS:
        (path / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(path / name, ignore_errors=True)
    others = sorted(p.name for p in path.iterdir() if p.name != LOCK)
    if others:
        logger.warning(
            "--overwrite: kept %d file(s) in %s that are not the run's: %s",
            len(others),
            path,
            ", ".join(others[:5]) + (" ..." if len(others) > 5 else ""),
        )


class RunFolder:
    """An exclusive hold on a run folder; release it (or leave the ``with`` block) when the run ends."""

    def __init__(self, path: Path, fd: int | None, created: bool) -> None:
        self.path, self._fd, self._created = path, fd, created

    @classmethod
    def claim(cls, path: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunFolder:
        """Hold ``path`` for one training: a new run (refused where a run already is, unless ``overwrite``:
        then the old run's files are deleted) or the resumption of the run there."""
        path = Path(path)
        flag = f"--resume {path}" if resume else f"--run-dir {path}"
        if resume and not (path / "config.json").is_file():
            raise ResNetError(f"{flag}: not a run folder (no config.json)")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ResNetError(f"cannot create the run folder {path}: {e.strerror}") from None
        folder = cls(path, fd, created)
        try:
            folder._lock(flag)
            if not resume and holds_run(path):
                if not overwrite:
                    raise ResNetError(
                        f"{flag} already holds a run; continue it with `resnet train --resume {path}`"
                        f", or start over with --overwrite (deletes its files)"
                    )
                logger.info("--overwrite: deleting the run in %s", path)
                clear_run(path)
            remove_stale_temp_files(path)
        except BaseException:
            folder.release()
            raise
        return folder

    def _lock(self, flag: str) -> None:
        assert self._fd is not None
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ResNetError(
                f"{flag}: the folder is in use by another training (process {holder}); wait for it to end or stop it"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Drop the lock; a folder this claim created and nothing was written to is removed again."""
        if self._fd is None:
            return
        if self._created and [p.name for p in self.path.iterdir()] == [LOCK]:
            (self.path / LOCK).unlink(missing_ok=True)
            try:
                self.path.rmdir()
            except OSError:
                pass
        os.close(self._fd)  # closing the only descriptor releases the flock
        self._fd = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
