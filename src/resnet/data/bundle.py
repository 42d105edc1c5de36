"""The in-memory shape of a dataset: a :class:`DataBundle` of train/val/test splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, TypeVar

import torch


@dataclass
class TensorSplit:
    """A split held in memory: ``images`` uint8 [N, C, H, W], ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    coarse_labels: torch.Tensor | None = None  # CIFAR-100's 20 superclasses, kept alongside

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.dim() == 4, "images must be uint8 NCHW"
        assert self.labels.dtype == torch.int64 and len(self.labels) == len(self.images)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> TensorSplit:
        coarse = self.coarse_labels[indices] if self.coarse_labels is not None else None
        return TensorSplit(self.images[indices].contiguous(), self.labels[indices], coarse)


@dataclass
class FileSplit:
    """A split of image files decoded per item: ``samples`` is a list of (path, label)."""

    samples: list[tuple[str, int]]
    skip_bad_images: bool = False  # images that fail to decode are left out of their batch and counted

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def subset(self, indices: torch.Tensor) -> FileSplit:
        return FileSplit([self.samples[i] for i in indices.tolist()], self.skip_bad_images)


Split = TensorSplit | FileSplit
_Kind = TypeVar("_Kind", TensorSplit, FileSplit)


def _all_of(splits: list[Split], kind: type[_Kind]) -> TypeGuard[list[_Kind]]:
    return all(isinstance(s, kind) for s in splits)


def _no_none(labels: list[torch.Tensor | None]) -> TypeGuard[list[torch.Tensor]]:
    return all(c is not None for c in labels)


def concat_splits(splits: list[Split]) -> Split:
    """The images of ``splits`` one after another (all of one kind; tensor splits of one image size)."""
    if _all_of(splits, FileSplit):
        return FileSplit([x for s in splits for x in s.samples], any(s.skip_bad_images for s in splits))
    assert _all_of(splits, TensorSplit), "cannot mix in-memory and file splits"
    coarse = [s.coarse_labels for s in splits]
    return TensorSplit(
        torch.cat([s.images for s in splits]),
        torch.cat([s.labels for s in splits]),
        torch.cat(coarse) if _no_none(coarse) else None,
    )


def relabel(split: Split, mapping: torch.Tensor) -> Split:
    """``split`` with every label ``y`` replaced by ``mapping[y]``."""
    if isinstance(split, FileSplit):
        table = mapping.tolist()
        return FileSplit([(path, table[y]) for path, y in split.samples], split.skip_bad_images)
    return TensorSplit(split.images, mapping[split.labels], split.coarse_labels)


@dataclass
class DataBundle:
    """Everything a run needs to know about its data.

    ``kind`` is "tensor" (every split in memory as uint8, ``image_size`` set) or "files" (paths
    decoded per item, ``image_size`` None). ``split`` is a JSON-serialisable description of how
    train/val were made; ``skipped`` lists unreadable images left out with ``skip_bad_images``.
    """

    name: str
    classes: list[str]
    in_channels: int
    kind: Literal["tensor", "files"]
    train: Split
    val: Split | None
    test: Split | None
    split: dict[str, Any]
    image_size: tuple[int, int] | None
    cache_dir: str | None = None
    coarse_classes: list[str] | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)
