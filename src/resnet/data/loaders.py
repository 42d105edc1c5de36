"""Training and evaluation loaders: normalised float batches on the requested device.

The order of a training epoch is a pure function of (seed, epoch): one global permutation, of which
rank r of w takes every w-th entry (disjoint shards, reshuffled every epoch). The random numbers of
batch i come from a generator seeded by (seed, epoch, rank, i), so ``start(epoch, i)`` resumes a run
mid-epoch with exactly the batches it would have seen.

- "tensor" data lives on the device as uint8; a batch is gathered, normalised and augmented there
  in a few whole-batch operations (:mod:`resnet.data.batched`).
- "files" data goes through a ``torch.utils.data.DataLoader`` whose workers decode and crop each
  image (uint8, so little crosses between processes); normalisation and PCA lighting run on the batch.

CIFAR augmentation pads with zeros after normalisation (zero = the mean pixel), as the paper's
reference implementations do.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from resnet.data import transforms as T
from resnet.data.batched import (
    PadCropFlipNormalize,
    cutmix_batch,
    cutmix_box,
    cutout_batch,
    cutout_params,
    flip_batch,
    mixup_batch,
    random_crop_params,
)
from resnet.data.bundle import DataBundle, FileSplit, TensorSplit
from resnet.data.images import decode_tensor
from resnet.data.normalization import Normalization
from resnet.data.transforms import CIFAR_PAD, PROTOCOLS  # noqa: F401  (PROTOCOLS re-exported)
from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

AUGMENTS = ("cifar", "imagenet", "flip", "none")
CUTOUT_STREAM = 1  # the last seed value of a batch's cutout squares: drawn apart from its crops and flips
MIX_STREAM = 2  # and of its mixup or CutMix draws


def mix_seed(*values: int) -> int:
    """One 63-bit seed from several integers (numpy's SeedSequence: no collisions between tuples)."""
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint64)[0] >> 1)


def generator(*values: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*values))


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This rank's indices for ``epoch``: every ``world_size``-th entry of one seeded permutation."""
    perm = torch.randperm(n, generator=generator(seed, epoch))
    usable = (n // world_size) * world_size  # equal shards, so every rank runs the same number of steps
    return perm[rank:usable:world_size]


@dataclass(frozen=True)
class BatchMixing:
    """What is done to a normalised training batch beyond the paper's augmentation (all off by default).

    ``cutout``: the side of each image's cutout square in pixels (DeVries & Taylor 2017). ``mixup`` and
    ``cutmix``: the alpha of the Beta(alpha, alpha) that draws a batch's mixing weight (Zhang et al.
    2018; Yun et al. 2019), each image mixed with another of the batch; with both, each batch takes one
    of the two at random. Mixed batches carry class probabilities [B, classes] in place of labels.
    Every draw comes from a stream of its own, keyed by the batch, so a run's crops and flips stay what
    they are without these, and a resume mid-epoch sees the same batches."""

    cutout: int = 0
    mixup: float = 0.0
    cutmix: float = 0.0
    num_classes: int | None = None  # needed by mixup and CutMix

    def __post_init__(self) -> None:
        for name in ("cutout", "mixup", "cutmix"):
            if getattr(self, name) < 0:
                raise ResNetError(f"option '{name}': {getattr(self, name)} must not be negative (0 = off)")
        if (self.mixup or self.cutmix) and not self.num_classes:
            raise ResNetError("option 'mixup'/'cutmix': the number of classes is needed to mix labels")

    def apply(self, x: torch.Tensor, y: torch.Tensor, key: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cutout:
            if self.cutout > min(x.shape[-2:]):
                size = "x".join(map(str, x.shape[-2:]))
                raise ResNetError(f"option 'cutout': {self.cutout} px is larger than the {size} training images")
            g = generator(*key, CUTOUT_STREAM)
            x = cutout_batch(x, *cutout_params(len(x), x.shape[-2], x.shape[-1], g), self.cutout)
        if not (self.mixup or self.cutmix):
            return x, y
        assert self.num_classes is not None  # checked in __post_init__
        rng = np.random.default_rng(mix_seed(*key, MIX_STREAM))
        use_cutmix = bool(self.cutmix) and (not self.mixup or rng.random() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(rng.beta(alpha, alpha))
        partner = torch.from_numpy(rng.permutation(len(x)))
        targets = F.one_hot(y, self.num_classes).float()
        if not use_cutmix:
            return mixup_batch(x, targets, partner, lam)
        h, w = x.shape[-2:]
        box = cutmix_box(h, w, lam, int(rng.integers(h)), int(rng.integers(w)))
        return cutmix_batch(x, targets, partner, box)


class TrainLoader(ABC):
    """Iterable of ``(images, labels)``; ``len()`` batches per epoch; ``set_epoch``/``start`` for resume."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
        mixing: BatchMixing | None = None,
    ):
        if batch_size < 1:
            raise ResNetError(f"option 'batch-size': {batch_size} must be at least 1")
        if not 0 <= rank < world_size:
            raise ResNetError(f"rank {rank} is outside 0..{world_size - 1}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.mixing = mixing or BatchMixing()
        self.epoch = 0

    def __len__(self) -> int:
        per_rank = self.n // self.world_size
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batch_indices(self, epoch: int) -> list[torch.Tensor]:
        order = epoch_order(self.n, self.seed, epoch, self.rank, self.world_size)
        return list(order.split(self.batch_size))[: len(self)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.start(self.epoch, 0)

    def start(self, epoch: int, batch_index: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` from ``batch_index`` on (resuming mid-epoch)."""
        self.epoch = epoch
        return self._batches(epoch, batch_index)

    @abstractmethod
    def _batches(self, epoch: int, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``first``, ``first + 1``, ... of ``epoch``."""

    def _finish(self, x: torch.Tensor, y: torch.Tensor, epoch: int, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``i`` of ``epoch``, normalised, with what ``self.mixing`` adds (each from its own stream)."""
        return self.mixing.apply(x, y, (self.seed, epoch, self.rank, i))


class TensorTrainLoader(TrainLoader):
    """Batches of an in-memory split, augmented on ``device`` a whole batch at a time."""

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        *,
        augment: str,
        normalization: Normalization,
        device: torch.device,
        **kw: Any,
    ):
        super().__init__(len(split), batch_size, **kw)
        if augment == "imagenet":
            raise ResNetError(
                "option 'augment': imagenet needs image files (kind 'files'); this dataset is in memory "
                f"at {tuple(split.images.shape[-2:])} px: use cifar, flip or none"
            )
        self.augment, self.normalization, self.device = augment, normalization, device
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        if augment == "cifar":
            channels, h, w = self.images.shape[1:]  # NCHW, as TensorSplit holds them
            self._crop = PadCropFlipNormalize(
                self.images, *normalization.shift_divisor(channels, h, w, device=device), pad=CIFAR_PAD
            )

    def _batches(self, epoch: int, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i, idx in enumerate(self.batch_indices(epoch)[first:], start=first):
            idx = idx.to(self.device)
            g = generator(self.seed, epoch, self.rank, i)
            if self.augment == "cifar":
                x = self._crop(idx, *random_crop_params(len(idx), CIFAR_PAD, g))
            else:
                x = self.normalization.apply(self.images[idx])
                if self.augment == "flip":
                    x = flip_batch(x, torch.rand(len(idx), generator=g) < 0.5)
            yield self._finish(x, self.labels[idx], epoch, i)


def _collate(items: list[tuple[Any, int, str | None]]) -> tuple[Any, torch.Tensor, list[str]]:
    """Stack the decoded items; unreadable ones come back as error messages, not as images."""
    good = [(x, y) for x, y, err in items if err is None]
    errors = [err for _, _, err in items if err is not None]
    labels = torch.tensor([y for _, y in good], dtype=torch.int64)
    if not good:
        return None, labels, errors
    first = good[0][0]
    if isinstance(first, list):  # multi-scale: one batch per scale
        return [torch.stack([x[s] for x, _ in good]) for s in range(len(first))], labels, errors
    return torch.stack([x for x, _ in good]), labels, errors


class _FileTrainSet(Dataset):
    """Item ``(index, epoch)`` -> (uint8 augmented view, label, error or None).

    The item's generator is seeded by (seed, epoch, rank, index) here, in the worker: seeding costs
    about 13 us an image, which the main process should not spend on a whole epoch up front.
    """

    def __init__(self, samples: list[tuple[str, int]], augment: str, seed: int, rank: int):
        self.samples, self.augment, self.seed, self.rank = samples, augment, seed, rank

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor | None, int, str | None]:
        index, epoch = key
        path, label = self.samples[index]
        g = generator(self.seed, epoch, self.rank, index)
        try:
            if self.augment == "imagenet":
                side = T.random_side(g)  # drawn first so the JPEG can be decoded at reduced size
                return T.scale_augment(decode_tensor(path, min_side=side), g, side=side), label, None
            x = decode_tensor(path, min_side=256)
            if self.augment == "cifar":
                top, left = (int(v) for v in torch.randint(0, 2 * CIFAR_PAD + 1, (2,), generator=g))
                return T.pad_crop_flip(x, top, left, bool(torch.rand((), generator=g) < 0.5), CIFAR_PAD), label, None
            x = T.center_view(x)
            flip = self.augment == "flip" and bool(torch.rand((), generator=g) < 0.5)
            return (T.hflip(x) if flip else x), label, None
        except ResNetError as e:
            return None, label, str(e)


def _check_errors(errors: list[str], skip: bool, counter: list[int]) -> None:
    if not errors:
        return
    if not skip:
        raise ResNetError(f"{errors[0]} (pass --skip-bad-images to leave unreadable images out)")
    counter[0] += len(errors)
    logger.warning("skipped %d unreadable images so far (--skip-bad-images), latest: %s", counter[0], errors[-1])


class FileTrainLoader(TrainLoader):
    """Batches of image files decoded and augmented by DataLoader workers."""

    def __init__(
        self,
        split: FileSplit,
        batch_size: int,
        *,
        augment: str,
        normalization: Normalization,
        device: torch.device,
        workers: int,
        **kw: Any,
    ):
        super().__init__(len(split), batch_size, **kw)
        self.split, self.augment, self.normalization = split, augment, normalization
        self.device, self.workers = device, workers
        self.skipped = [0]  # unreadable images met while training (with skip_bad_images)

    def _batches(self, epoch: int, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = self.batch_indices(epoch)[first:]
        keyed = [[(j, epoch) for j in b.tolist()] for b in batches]
        loader = DataLoader(
            _FileTrainSet(self.split.samples, self.augment, self.seed, self.rank),
            batch_sampler=keyed,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        for i, (x, y, errors) in enumerate(loader, start=first):
            _check_errors(errors, self.split.skip_bad_images, self.skipped)
            if x is None:
                continue
            x = x.to(self.device, non_blocking=True).float()
            if self.augment == "imagenet":
                x = T.lighting(x, generator(self.seed, epoch, self.rank, i))
            yield self._finish(self.normalization.apply(x), y.to(self.device, non_blocking=True), epoch, i)


def make_train_loader(
    bundle: DataBundle,
    batch_size: int,
    *,
    augment: str,
    normalization: Normalization,
    device: str | torch.device = "cpu",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    drop_last: bool = True,
    cutout: int = 0,
    mixup: float = 0.0,
    cutmix: float = 0.0,
) -> TrainLoader:
    """A training loader over ``bundle.train``; ``batch_size`` is per rank; ``cutout``, ``mixup`` and
    ``cutmix``: see :class:`BatchMixing` (0: off). See the module docstring."""
    if augment not in AUGMENTS:
        raise ResNetError(f"option 'augment': unknown {augment!r}; choose from {', '.join(AUGMENTS)}")
    kw: dict[str, Any] = dict(
        mixing=BatchMixing(cutout, mixup, cutmix, bundle.num_classes),
        augment=augment,
        normalization=normalization,
        device=torch.device(device),
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
    )
    if isinstance(bundle.train, TensorSplit):
        return TensorTrainLoader(bundle.train, batch_size, **kw)
    return FileTrainLoader(bundle.train, batch_size, workers=workers, **kw)


class _FileEvalSet(Dataset):
    def __init__(
        self,
        samples: list[tuple[str, int]],
        protocol: str,
        image_size: tuple[int, int] | None,
        in_channels: int | None,
        square: bool,
        view: T.ImageNetView,
    ):
        self.samples, self.protocol, self.image_size = samples, protocol, image_size
        self.in_channels, self.square, self.view = in_channels, square, view

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int, str | None]:
        path, label = self.samples[index]
        try:
            x = decode_tensor(path, min_side=T.decode_side(self.protocol, self.image_size, self.view))
            x = T.to_channels(x, self.in_channels)
            views = T.test_views(x, self.protocol, image_size=self.image_size, square=self.square, view=self.view)
            return views, label, None
        except ResNetError as e:
            return None, label, str(e)


SPLIT_SIZE: Final = "split"  # make_eval_loader's default geometry: the split's own (see there)


class EvalLoader:
    """Iterable of ``(views, labels)`` in the split's order, views normalised on ``device``:

    ``single``/``center``: [B, C, H, W]; ``ten-crop``: [B, 10, C, H, W]; ``multi-scale``: a list of
    five [B, C, H_s, W_s] batches (shorter sides 224..640) of the same images, to average scores over.
    The geometry follows ``image_size``, the network's input size (see :func:`resnet.data.transforms.test_views`).
    """

    def __init__(
        self,
        split: TensorSplit | FileSplit,
        batch_size: int,
        protocol: str,
        normalization: Normalization,
        device: torch.device,
        workers: int,
        image_size: tuple[int, int] | None = None,
        in_channels: int | None = None,
        view: T.ImageNetView = T.PAPER_VIEW,
    ):
        T.check_protocol(protocol, image_size)
        self.split, self.batch_size, self.protocol = split, batch_size, protocol
        self.normalization, self.device, self.workers = normalization, device, workers
        self.image_size, self.in_channels, self.view = image_size, in_channels, view
        self.skipped = [0]

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def _normalize(self, x: Any) -> Any:
        if isinstance(x, list):
            return [self.normalization.apply(v.to(self.device, non_blocking=True)) for v in x]
        x = self.normalization.apply(x.to(self.device, non_blocking=True))
        return T.padded_views(x, self.protocol, self.image_size)

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        if isinstance(self.split, TensorSplit):
            for start in range(0, len(self.split), self.batch_size):
                x = T.to_channels(self.split.images[start : start + self.batch_size].to(self.device), self.in_channels)
                y = self.split.labels[start : start + self.batch_size].to(self.device)
                yield self._normalize(T.test_views(x, self.protocol, image_size=self.image_size, view=self.view)), y
            return
        # Images of different shapes share a batch only at one shape: multi-scale batches crop the
        # longer side square (the whole image with batch_size 1).
        dataset = _FileEvalSet(
            self.split.samples, self.protocol, self.image_size, self.in_channels, self.batch_size > 1, self.view
        )
        loader = DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )
        for x, y, errors in loader:
            _check_errors(errors, self.split.skip_bad_images, self.skipped)
            if x is not None:
                yield self._normalize(x), y.to(self.device)


def make_eval_loader(
    split: TensorSplit | FileSplit,
    batch_size: int,
    *,
    protocol: str = "single",
    normalization: Normalization,
    device: str | torch.device = "cpu",
    workers: int = 0,
    image_size: tuple[int, int] | None | Literal["split"] = SPLIT_SIZE,
    in_channels: int | None = None,
    view: T.ImageNetView = T.PAPER_VIEW,
) -> EvalLoader:
    """An evaluation loader over ``split`` in its order (see :class:`EvalLoader`).

    ``image_size`` is the input size of the network evaluated: (H, W) for one trained on in-memory
    images of that size, None for one trained on image files (the ImageNet geometry). The default is
    the split's own (a TensorSplit's image size, None for files): right whenever the network was
    trained on this data. ``in_channels`` converts the images to the network's channels (None: as they are).
    ``view``: how the ImageNet views of image files are cut (published weights carry their own).
    """
    # tuple() is typed without the length of what it copies: an (H, W) pair here.
    if image_size == SPLIT_SIZE:
        image_size = cast("tuple[int, int]", tuple(split.images.shape[-2:])) if isinstance(split, TensorSplit) else None
    return EvalLoader(
        split,
        batch_size,
        protocol,
        normalization,
        torch.device(device),
        workers,
        cast("tuple[int, int]", tuple(image_size)) if image_size is not None else None,
        in_channels,
        view,
    )
