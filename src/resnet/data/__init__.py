"""Datasets and the paper's data pipelines.

This docstring is the API the rest of the package relies on (it follows the team contract; the few
additions are marked "extra").

Sources (:func:`load_dataset`, names in ``DATASETS``)::

    load_dataset(name, data_dir=None, *, val_split=None, split_seed=0, cache_dir=None,
                 skip_bad_images=False, download=False, decode_workers=None) -> DataBundle

- ``digits``: scikit-learn's 1,797 8x8 digits (0..16 scaled to 0..255), ``in_channels=1``, offline.
- ``cifar10`` / ``cifar100``: the official python format, from ``cifar-10-batches-py/`` (or
  ``cifar-100-python/``), a folder holding it, or the official ``.tar.gz``; read with a restricted
  unpickler. ``test`` is the official test set. ``download=True`` fetches the archive (MD5-checked,
  atomic, resumable) into ``data_dir`` or ``<cache_dir>/<name>``.
- ``imagefolder``: ``root/<class>/*`` or ``root/{train,val}/<class>/*``; sorted class names. Folders
  of same-size images up to 64 px are decoded once into the small-image cache (``kind="tensor"``),
  larger ones are decoded per item (``kind="files"``).
- ``val_split``: a count (the paper's CIFAR split: 5000) or a fraction of the training set, held
  out with a seeded permutation; ``None`` keeps the source's own val (an image folder's ``val/``).
  With both, the held-out part is ``val`` and the ``val/`` folder becomes ``test``.

``DataBundle``: ``name, classes, num_classes, in_channels, kind ("tensor"|"files"), train, val, test,
split (JSON description), image_size ((H, W) or None), cache_dir`` and (extra) ``coarse_classes``
(CIFAR-100), ``skipped`` (unreadable images left out). Tensor splits (``TensorSplit``) have
``images`` uint8 [N, C, H, W], ``labels`` int64 [N] (and ``coarse_labels`` for CIFAR-100); file
splits (``FileSplit``) have ``samples`` [(path, label)] and a ``labels`` tensor.

Normalisation::

    fit_normalization(bundle_or_train_split, mode, *, cache_dir=None) -> Normalization
    # mode: "pixel-mean" (paper), "channel", "none" (extra)
    Normalization.apply(x) / .to_dict() / Normalization.from_dict(d)

Loaders::

    make_train_loader(bundle, batch_size, *, augment, normalization, device="cpu", seed=0, rank=0,
                      world_size=1, workers=0, drop_last=True) -> TrainLoader
    # augment: "cifar", "imagenet" (files only), "flip", "none"
    # TrainLoader: len(), set_epoch(e), start(epoch, batch_index) -> iterator (resume), iter()
    make_eval_loader(split, batch_size, *, protocol="single", normalization, device="cpu",
                     workers=0, image_size="split", in_channels=None) -> EvalLoader
    # protocol: "single", "center", "ten-crop" ([B, 10, C, H, W]), "multi-scale" (list of 5 batches)
    # (extra) image_size: the network's input size, (H, W) for one trained on in-memory images (views
    # at that size; multi-scale refused), None for one trained on files (ImageNet crops); "split":
    # the split's own. in_channels: convert the images to the network's channels.

For ``resnet predict``: ``resnet.predict.load_image(path, normalization, *, protocol="single",
image_size=None, in_channels=3)``. (extra) For ``resnet eval`` on other data:
``resnet.data.sources.dataset_classes(name, data_dir)`` reads the class names without loading images.
"""

from resnet.data.bundle import DataBundle, FileSplit, TensorSplit
from resnet.data.loaders import AUGMENTS, PROTOCOLS, EvalLoader, TrainLoader, make_eval_loader, make_train_loader
from resnet.data.normalization import Normalization
from resnet.data.sources import DATASETS, load_dataset
from resnet.data.statistics import fit_normalization

__all__ = [
    "AUGMENTS",
    "DATASETS",
    "PROTOCOLS",
    "DataBundle",
    "EvalLoader",
    "FileSplit",
    "Normalization",
    "TensorSplit",
    "TrainLoader",
    "fit_normalization",
    "load_dataset",
    "make_eval_loader",
    "make_train_loader",
]
