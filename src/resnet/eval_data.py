"""The images a checkpoint is evaluated on, labelled with the checkpoint's own class indices.

- The data the run was trained on (the same dataset and, for folders, the same folder by resolved
  path): the held-out split is rebuilt from the recorded fraction and seed, so ``val`` is exactly the
  images the run validated on and never ones it trained on.
- Any other folder or dataset: its own structure. ``val`` is a folder's ``val/``, ``test`` CIFAR's
  official test set, ``train`` a folder's ``train/`` (or the folder itself); ``all`` is every image
  it holds, the way to score a separate test folder. Without a split asked for (:func:`eval_split`),
  a folder of class folders alone (no ``train/`` or ``val/`` in it: a test set) is scored whole.
- Class names are matched to the checkpoint's by name before any image is read: a folder may hold a
  subset of the classes (its labels are mapped to the network's indices); a class the network was not
  trained on is an error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from resnet.errors import ResNetError

if TYPE_CHECKING:
    from resnet.data.bundle import Split

logger = logging.getLogger(__name__)

SPLITS = ("val", "test", "train", "all")


def _resolved(path: str | None) -> Path | None:
    return Path(path).expanduser().resolve() if path else None


def data_name(meta: dict[str, Any], data: str | None, data_dir: str | None) -> str:
    """``--data``, else the dataset the run was trained on; a folder given for a run trained on digits,
    or one that holds no CIFAR files for a CIFAR run, is read as an image folder."""
    trained = meta["data"]["name"]
    if data or data_dir is None:
        return data or trained
    if trained == "digits":
        return "imagefolder"
    if trained in ("cifar10", "cifar100"):
        from resnet.data.cifar import holds_cifar

        if Path(data_dir).is_dir() and not holds_cifar(trained, data_dir):
            logger.info("%s holds no %s files: reading it as an image folder (<class>/<image>)", data_dir, trained)
            return "imagefolder"
    return trained


def is_training_data(meta: dict[str, Any], name: str, data_dir: str | None) -> bool:
    """Whether ``name`` in ``data_dir`` is the data the run was trained on (folders compared by resolved path)."""
    trained = meta["data"]
    if name != trained["name"]:
        return False
    return name == "digits" or data_dir is None or _resolved(data_dir) == _resolved(trained["data_dir"])


def class_mapping(data_classes: list[str], classes: list[str], where: str, source: str) -> torch.Tensor | None:
    """Label ``i`` of the data -> the network's index of the same name (None where they coincide).

    A class the network does not know is refused in one line listing the differences.
    """
    known = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in data_classes if c not in known]
    if unknown:

        def show(names: list[str]) -> str:
            return ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")

        raise ResNetError(
            f"{where} has classes {source} was not trained on: {show(unknown)} "
            f"({len(unknown)} of {len(data_classes)}); its classes are: {show(classes)}"
        )
    if data_classes == classes:
        return None
    return torch.tensor([known[c] for c in data_classes], dtype=torch.int64)


def checkpoint_split(
    meta: dict[str, Any],
    split: str,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    source: str | Path = "the checkpoint",
    quiet: bool = False,
) -> Any:
    """The ``split`` (one of ``SPLITS``) of the data a checkpoint was trained on, or of ``data``/``data_dir``,
    with labels that are the checkpoint's class indices (see the module docstring)."""
    return eval_split(meta, split, data=data, data_dir=data_dir, source=source, quiet=quiet)[1]


def eval_split(
    meta: dict[str, Any],
    split: str | None,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    source: str | Path = "the checkpoint",
    quiet: bool = False,
) -> tuple[str, Any]:
    """(the split taken, its images) as :func:`checkpoint_split`; ``split`` None: ``val``, or every image
    of a ``data_dir`` that is a test set only (class folders, no ``train/`` or ``val/``), said in a log line."""
    asked, split = split, split or "val"
    from resnet.data import load_dataset
    from resnet.data.bundle import concat_splits, relabel
    from resnet.data.sources import dataset_classes

    if split not in SPLITS:
        raise ResNetError(f"--split {split}: choose from {', '.join(SPLITS)}")
    trained = meta["data"]
    name = data_name(meta, data, data_dir)
    own = is_training_data(meta, name, data_dir)
    if not own and asked in ("val", "train") and data_dir and name == trained["name"] and not trained.get("data_dir"):
        # A checkpoint that records no folder (a shipped network): the folder given is its training data
        # when its held-out split is asked for by name, split as it was then.
        logger.info(
            "%s records no data folder: %s is taken as the data it was trained on, split as then "
            "(%s held out, split seed %s)",
            source,
            data_dir,
            trained["val_split"],
            trained["split_seed"],
        )
        own = True
    folder = (data_dir or trained["data_dir"]) if own else data_dir
    where = f"{name} in {folder}" if folder else name
    mapping = class_mapping(dataset_classes(name, folder), list(meta["classes"]), where, str(source))

    val_split = trained["val_split"] if own and split != "all" else None
    if val_split is not None and val_split >= 1:
        val_split = int(val_split)
    bundle = load_dataset(
        name,
        folder,
        val_split=val_split,
        split_seed=trained["split_seed"],
        cache_dir=trained.get("cache_dir"),
        quiet=quiet,
        train_subset=trained.get("train_subset") if own and split == "train" else None,
    )
    chosen: Split | None
    if asked is None and not own and bundle.val is None and bundle.test is None and _only_class_folders(folder):
        count = len(bundle.train)
        logger.info("%s has no val split: a test set, every one of its %d images is evaluated", where, count)
        split = "all"
    if split == "all":
        if own:
            logger.warning("--split all: %s includes the images %s was trained on", where, source)
        chosen = concat_splits([s for s in (bundle.train, bundle.val, bundle.test) if s is not None])
    else:
        chosen = {"val": bundle.val, "test": bundle.test, "train": bundle.train}[split]
    if chosen is None:
        why = "" if own else " (the run's held-out split applies only to the data it was trained on)"
        raise ResNetError(
            f"--split {split}: {where} has no {split} split{why}; --split all evaluates every image in it"
        )
    return split, relabel(chosen, mapping) if mapping is not None else chosen


def _only_class_folders(folder: str | None) -> bool:
    """A folder of class folders, without the ``train/`` that would make some of its images training images."""
    return folder is not None and Path(folder).is_dir() and not (Path(folder) / "train").is_dir()
