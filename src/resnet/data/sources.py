"""``load_dataset``: one entry point over every source, with the seeded train/val split."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch

from resnet.data import cache as cache_mod
from resnet.data.bundle import DataBundle, FileSplit, Split, TensorSplit
from resnet.data.folder import image_root_classes, scan_image_root
from resnet.data.images import image_size
from resnet.data.splits import split_indices, subset_indices
from resnet.errors import ResNetError
from resnet.progress import progress

logger = logging.getLogger(__name__)

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
SMALL_SIDE = 64  # image folders whose images are all one size no larger than this go to the cache


def load_dataset(
    name: str,
    data_dir: str | None = None,
    *,
    val_split: float | int | None = None,
    split_seed: int = 0,
    cache_dir: str | None = None,
    skip_bad_images: bool = False,
    download: bool = False,
    decode_workers: int | None = None,
    quiet: bool = False,
    train_subset: int | None = None,
) -> DataBundle:
    """Load a dataset as a :class:`DataBundle`.

    - ``digits``: scikit-learn's 1,797 8x8 digits, 1 channel, no download, no ``data_dir``.
    - ``cifar10`` / ``cifar100``: the official python format (folder or ``.tar.gz``); ``test`` is the
      official test set; ``download=True`` fetches the archive into ``data_dir`` (or the cache folder).
    - ``imagefolder``: ``data_dir/<class>/*`` or ``data_dir/{train,val}/<class>/*``. Every file's header
      is read first (sizes, and non-images found at once). If every image has the same size and
      neither side exceeds 64 px, the folder is decoded once into the small-image cache and the bundle
      is ``kind="tensor"``; otherwise it is ``kind="files"`` and images are decoded per item.

    ``val_split`` holds out a seeded random part of the training set: a count (the paper's 45k/5k
    CIFAR split is ``val_split=5000``) or a fraction. ``None`` keeps the source's own validation set
    (an image folder's ``val/``; digits and CIFAR have none). When both exist, the held-out part is
    ``val`` and the folder's ``val/`` becomes ``test``. ``quiet`` turns off the progress bars of the
    header pass and the one-time decoding. ``train_subset`` keeps a seeded random part of the training
    images (after the validation images are held out, so the validation set does not change).
    """
    if name not in DATASETS:
        raise ResNetError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    cache = Path(cache_dir) if cache_dir else cache_mod.default_cache_dir()
    workers = decode_workers if decode_workers is not None else min(os.cpu_count() or 1, 8)
    if name == "digits":
        from resnet.data.digits import read_digits

        classes, train = read_digits()
        parts: dict[str, Any] = dict(classes=classes, in_channels=1, train=train, own_val=None, test=None)
    elif name in ("cifar10", "cifar100"):
        from resnet.data.cifar import read_cifar

        if data_dir is None and not download:
            raise ResNetError(f"--data {name} needs --data-dir DIR (holding the official python files) or --download")
        root = Path(data_dir) if data_dir else cache / name
        data = read_cifar(name, root, download_to=root if download and not root.is_file() else None)
        parts = dict(
            classes=data.classes,
            in_channels=3,
            train=data.train,
            own_val=None,
            test=data.test,
            coarse_classes=data.coarse_classes,
        )
    else:
        if data_dir is None:
            raise ResNetError(
                "--data imagefolder needs --data-dir DIR (DIR/<class>/*.jpg or DIR/{train,val}/<class>/*)"
            )
        parts = _image_folder(Path(data_dir), cache, skip_bad_images, workers, quiet)
    return _assemble(name, data_dir, parts, val_split, split_seed, cache, train_subset)


def dataset_classes(name: str, data_dir: str | None = None) -> list[str]:
    """The class names :func:`load_dataset` would give, read cheaply (folder names, CIFAR's meta file)
    so that a mismatch is found before any image is decoded."""
    if name not in DATASETS:
        raise ResNetError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name == "digits":
        return [str(d) for d in range(10)]
    if data_dir is None:
        raise ResNetError(f"--data {name} needs --data-dir DIR")
    if name == "imagefolder":
        return image_root_classes(data_dir)
    from resnet.data.cifar import read_cifar_classes

    return read_cifar_classes(name, data_dir)


def _assemble(
    name: str,
    data_dir: str | None,
    parts: dict[str, Any],
    val_split: float | int | None,
    seed: int,
    cache: Path,
    train_subset: int | None = None,
) -> DataBundle:
    train: Split = parts["train"]
    own_val: Split | None = parts["own_val"]
    test: Split | None = parts["test"]
    desc: dict[str, Any] = {"dataset": name, "data_dir": str(data_dir) if data_dir else None}
    if val_split is not None and val_split != 0:
        train_idx, val_idx, how = split_indices(len(train), val_split, seed)
        val: Split | None = train.subset(val_idx)
        train = train.subset(train_idx)
        if own_val is not None:
            test = own_val
        desc.update(val_source="held out of the training set", **how)
    else:
        val = own_val
        desc.update(
            val_source="the source's val folder" if own_val is not None else None,
            train_size=len(train),
            val_size=len(val) if val is not None else 0,
        )
    if train_subset is not None:
        keep, subset_desc = subset_indices(len(train), train_subset, seed)
        train = train.subset(keep)
        desc.update(subset_desc)
    desc["test_size"] = len(test) if test is not None else 0
    skipped = parts.get("skipped", [])
    desc["skipped_images"] = len(skipped)
    kind: Literal["tensor", "files"] = "tensor" if isinstance(train, TensorSplit) else "files"
    # (H, W) of NCHW images: tuple() of a shape slice is typed without its length.
    size = cast("tuple[int, int]", tuple(train.images.shape[-2:])) if isinstance(train, TensorSplit) else None
    return DataBundle(
        name=name,
        classes=parts["classes"],
        in_channels=parts["in_channels"],
        kind=kind,
        train=train,
        val=val,
        test=test,
        split=desc,
        image_size=size,
        cache_dir=str(cache),
        coarse_classes=parts.get("coarse_classes"),
        skipped=skipped,
    )


def _headers(paths: list[str], skip_bad_images: bool, quiet: bool) -> tuple[list[tuple[int, int] | None], list[str]]:
    sizes: list[tuple[int, int] | None] = []
    bad: list[str] = []
    for path in progress(paths, desc="reading image headers", quiet=quiet, unit="img"):
        try:
            sizes.append(image_size(path))
        except ResNetError as e:
            if not skip_bad_images:
                raise ResNetError(f"{e} (pass --skip-bad-images to leave unreadable images out)") from None
            sizes.append(None)
            bad.append(path)
    return sizes, bad


def _image_folder(root: Path, cache: Path, skip_bad_images: bool, workers: int, quiet: bool) -> dict[str, Any]:
    # Every path under the resolved folder: "data", "./data", "/abs/data" and a symlink to it are one
    # cache entry, and the skipped-image list stored in it names the same strings on every load.
    root = root.resolve() if root.is_dir() else root
    train_scan, val_scan = scan_image_root(root, skip_bad_images)
    groups = [train_scan.samples] + ([val_scan.samples] if val_scan else [])
    paths = [p for g in groups for p, _ in g]
    key = cache_mod.files_key(paths, extra=f"skip={skip_bad_images}")
    entry = cache_mod.load_cached(key, cache)
    if entry is not None and len(entry[0]) != len(set(paths) - set(entry[1]["skipped"])):
        # Entries of older versions left header-unreadable files out of their skipped list.
        logger.warning("%s: its cache entry %s does not match the folder; decoding again", root, key)
        entry = None
    skipped: list[str] = []
    if entry is None:
        sizes, skipped = _headers(paths, skip_bad_images, quiet)
        good = {s for s in sizes if s is not None}
        if len(good) == 1 and max(next(iter(good))) <= SMALL_SIDE:
            w, h = next(iter(good))
            keep = [p for p, s in zip(paths, sizes) if s is not None]
            entry = cache_mod.build_cache(
                key,
                cache,
                keep,
                (h, w),
                skip_bad_images=skip_bad_images,
                workers=workers,
                skipped=skipped,
                source=str(root),
                quiet=quiet,
            )
    if entry is not None:
        images, meta = entry
        skipped = list(meta["skipped"])
    skipped = train_scan.skipped + (val_scan.skipped if val_scan else []) + skipped  # names that are not UTF-8
    if skipped:
        logger.warning("skipped %d unreadable images (--skip-bad-images), e.g. %s", len(skipped), skipped[0])
    bad = set(skipped)
    kept = [[(p, y) for p, y in g if p not in bad] for g in groups]
    splits: list[Split]
    if entry is not None:
        splits, start = [], 0
        for g in kept:
            labels = torch.tensor([y for _, y in g], dtype=torch.int64)
            # Copy out of the memory map: training reads every image every epoch.
            splits.append(TensorSplit(torch.from_numpy(np.array(images[start : start + len(g)])), labels))
            start += len(g)
    else:
        splits = [FileSplit(g, skip_bad_images) for g in kept]
    return dict(
        classes=train_scan.classes,
        in_channels=3,
        train=splits[0],
        own_val=splits[1] if len(splits) > 1 else None,
        test=None,
        skipped=skipped,
    )
