"""Image folders: ``root/<class>/*.jpg`` or the ImageNet layout ``root/{train,val}/<class>/*``.

Classes are the sorted names of the class folders. A ``val/`` folder must have exactly the classes
of ``train/``. Empty class folders, unreadable images and files that are not images are errors
naming the file; with ``skip_bad_images`` unreadable images are left out and listed instead.

A class folder that cannot be listed (no permission) or whose name is not valid UTF-8 is an error
naming it, with or without ``skip_bad_images`` (leaving a class out would change the classes). An
image name that is not valid UTF-8 is an error, or left out and listed with ``skip_bad_images``; a
symbolic link that leads nowhere (a loop, a missing target) counts as an unreadable image, so the
header reader names it. Names are shown with ``\\xff`` escapes for the bytes that are not UTF-8.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from resnet.data.images import IMAGE_EXTENSIONS, is_image_name, shown
from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

VAL_NAMES = ("val", "validation")


@dataclass
class FolderScan:
    """One folder of class folders: sorted classes and (path, label) samples in a stable order."""

    root: Path
    classes: list[str]
    samples: list[tuple[str, int]]
    ignored: list[str] = field(default_factory=list)  # non-image names, reported, never decoded
    skipped: list[str] = field(default_factory=list)  # image names that are not UTF-8 (skip_bad_images), shown


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir hands undecodable bytes over as lone surrogates
        return False
    return True


def _entries(folder: Path, what: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as e:
        raise ResNetError(f"cannot read the {what} {shown(folder)}: {e.strerror or e}") from None


def _file_like(entry: os.DirEntry[str]) -> bool:
    """A file, or a symbolic link that leads nowhere (a loop, a missing target): the reader names those."""
    try:
        if entry.is_file():
            return True
    except OSError:  # ELOOP
        return True
    return entry.is_symlink() and not os.path.exists(entry.path)


def scan_class_folders(root: Path, skip_bad_images: bool = False) -> FolderScan:
    if not root.is_dir():
        raise ResNetError(_not_a_folder(root))
    classes = _class_names(root)
    if not classes:
        raise ResNetError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    samples: list[tuple[str, int]] = []
    ignored: list[str] = []
    skipped: list[str] = []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(e.path for e in _entries(folder, "class folder") if _file_like(e) and not e.name.startswith("."))
        undecodable = [f for f in files if not _is_utf8(f) and is_image_name(f)]
        if undecodable and not skip_bad_images:
            raise ResNetError(
                f"{shown(undecodable[0])}: the file name is not valid UTF-8; rename it "
                "(or pass --skip-bad-images to leave such images out)"
            )
        skipped += [shown(f) for f in undecodable]
        files = [f for f in files if f not in undecodable]
        images = [f for f in files if is_image_name(f)]
        ignored += [shown(f) for f in files if not is_image_name(f)]
        if not images:
            raise ResNetError(f"{folder}: empty class folder (no files ending in {', '.join(IMAGE_EXTENSIONS)})")
        samples += [(f, label) for f in images]
    if ignored:
        logger.warning("%s: ignored %d files that are not images by name, e.g. %s", root, len(ignored), ignored[0])
    return FolderScan(root, classes, samples, ignored, skipped)


_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")


def _not_a_folder(root: Path) -> str:
    """Why ``root`` cannot be read as an image folder, and what to do: it is missing, an archive or a file."""
    if not root.exists():
        return f"{root}: image folder not found (expected {root}/<class>/<image> or {root}/train/<class>/<image>)"
    name = root.name.lower()
    if name.endswith(_ARCHIVES):
        how = f"unzip {root} -d DIR" if name.endswith(".zip") else f"mkdir DIR && tar -xf {root} -C DIR"
        return f"{root} is an archive; extract it first ({how}) and pass --data-dir DIR"
    return f"{root} is a file; --data-dir needs a folder of class folders (<class>/<image>)"


def _class_names(root: Path) -> list[str]:
    names = []
    for e in _entries(root, "image folder"):
        try:
            folder = e.is_dir()
        except OSError:  # a symbolic link loop is no class folder: its files, if any, are named later
            folder = False
        if folder and not e.name.startswith("."):
            if not _is_utf8(e.name):
                raise ResNetError(f"{shown(e.path)}: the class folder's name is not valid UTF-8; rename it")
            names.append(e.name)
    return sorted(names)


def _layout(root: Path) -> tuple[Path, Path | None]:
    """(the train folder, the val folder or None): ``root/{train,val}`` where ``root/train`` exists, else ``root``."""
    if not root.is_dir():
        raise ResNetError(_not_a_folder(root))
    train_dir = root / "train" if (root / "train").is_dir() else root
    val_dir = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None) if train_dir != root else None
    return train_dir, val_dir


def image_root_classes(root: str | Path) -> list[str]:
    """The class names :func:`scan_image_root` would find, from the folder names alone (no file is listed)."""
    train_dir, _ = _layout(Path(root))
    classes = _class_names(train_dir)
    if not classes:
        raise ResNetError(f"{train_dir}: no class folders (expected {train_dir}/<class>/<image>)")
    return classes


def scan_image_root(root: str | Path, skip_bad_images: bool = False) -> tuple[FolderScan, FolderScan | None]:
    """The train scan and, where the root has one, the val scan with the same classes."""
    train_dir, val_dir = _layout(Path(root))
    train = scan_class_folders(train_dir, skip_bad_images)
    if val_dir is None:
        return train, None
    val = scan_class_folders(val_dir, skip_bad_images)
    if val.classes != train.classes:
        missing = sorted(set(train.classes) - set(val.classes))
        extra = sorted(set(val.classes) - set(train.classes))
        raise ResNetError(
            f"class folders differ between {train_dir} and {val_dir}: missing in val {missing}, extra in val {extra}"
        )
    return train, val
