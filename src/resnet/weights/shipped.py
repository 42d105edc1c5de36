"""Networks trained by this project's own commands, shipped inside the package with a model card each.

Each file under ``resnet/weights/trained/`` is a checkpoint of this project (weights, classes,
normalisation, input size; no training state), written from a finished run by
``benchmarks/ship_weights.py``, which also writes its model card (``<name>.md``: the exact command,
commit, seed, data, validation errors, time and machine) and prints its row for :data:`SHIPPED`. The
full SHA-256 of every file is pinned here and checked on the bytes that are loaded.

A shipped network is named ``<model>.<tag>`` (``resnet20.cifar10``) wherever a run folder or a
checkpoint is accepted, and ``create_model("resnet20", weights="cifar10")`` builds it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from resnet.checkpoints import Checkpoint, load_checkpoint, resolve_path
from resnet.errors import ResNetError

TRAINED = Path(__file__).parent / "trained"


@dataclass(frozen=True)
class ShippedWeights:
    """One shipped file and what its model card says about it."""

    model: str  # this project's name for the network
    tag: str  # what it was trained on: "cifar10"
    sha256: str  # of the whole file
    val_error: float  # validation error (%) under the recipe's final protocol (flip for cifar-fast)
    val_error_single: float  # validation error (%) of the plain single view
    data: str  # what it was trained and validated on, in words

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def path(self) -> Path:
        return TRAINED / f"{self.name}.safetensors"

    @property
    def card(self) -> Path:
        return TRAINED / f"{self.name}.md"


_CIFAR_JPEG = "CIFAR-10 training images re-encoded as JPEG, 45k/5k split (split seed 0)"

SHIPPED: tuple[ShippedWeights, ...] = (
    # resnet train --recipe cifar-fast ... --model resnet20 --time-limit 30m --seed 0 (its model card)
    ShippedWeights(
        "resnet20",
        "cifar10",
        "a228a761af711d6082f4b902ae247cfb6f885618f91ff440610c42fbb4e7436a",
        11.38,
        12.56,
        _CIFAR_JPEG,
    ),
    # resnet train --recipe cifar-fast ... --model resnet56 --time-limit 90m --seed 0 (its model card)
    ShippedWeights(
        "resnet56",
        "cifar10",
        "fb1b28bdca46e0d55f817741a705bfea866b8093f9e9ffa8dac7d2c64b7b84b9",
        9.34,
        10.60,
        _CIFAR_JPEG,
    ),
)


def list_shipped(model: str | None = None) -> list[ShippedWeights]:
    return [w for w in SHIPPED if model is None or w.model == model]


_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def find_shipped(name: object, model: str | None = None) -> ShippedWeights | None:
    """The entry called ``name`` (``"resnet20.cifar10"``), or with ``model``, its tag (``"cifar10"``).
    A name wins over a file or folder of the same name in the working directory, as a published
    name does; a ``Path``, or anything written as a path or a weights file, is never a name."""
    text = str(name)
    if isinstance(name, Path) or "/" in text or "\\" in text or text.endswith(_FILE_SUFFIXES):
        return None
    for w in SHIPPED:
        if text == w.name or (model is not None and w.model == model and text == w.tag):
            return w
    return None


def load_shipped(entry: ShippedWeights) -> Checkpoint:
    """The shipped checkpoint, its bytes checked against the pinned SHA-256 before they are parsed."""
    try:
        data = entry.path.read_bytes()
    except OSError as e:
        raise ResNetError(f"{entry.name}: the shipped file {entry.path} cannot be read ({e.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ResNetError(
            f"{entry.name}: {entry.path} has SHA-256 {digest[:16]}..., not the pinned {entry.sha256[:16]}...: "
            "the file is damaged or was replaced; reinstall the package"
        )
    return load_checkpoint(entry.path, data)


def read_checkpoint(ref: str | Path) -> tuple[Checkpoint, Path]:
    """A run folder (its best checkpoint, else its last), a checkpoint file, or a shipped network's name
    (``resnet20.cifar10``, hash-checked): the checkpoint and the file it came from."""
    entry = find_shipped(ref)
    if entry is not None:
        return load_shipped(entry), entry.path
    path = resolve_path(ref)
    return load_checkpoint(path), path
