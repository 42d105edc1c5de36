"""CIFAR-10 and CIFAR-100 in the official python format, from the folder or the .tar.gz itself.

Layouts accepted for ``data_dir``: the extracted ``cifar-10-batches-py/`` (``cifar-100-python/``)
folder, a folder that contains it, a folder that contains the official archive, or the archive
path. Every file is read with :mod:`resnet.data.safe_pickle` and checked to be a CIFAR batch.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnet.data.bundle import TensorSplit
from resnet.data.download import download
from resnet.data.safe_pickle import safe_load
from resnet.errors import ResNetError


@dataclass(frozen=True)
class CifarSource:
    name: str
    folder: str  # the folder inside the archive
    archive: str
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes
    names_key: bytes
    max_bytes: int = 180_000_000  # the archives are 170.5 MB (CIFAR-10) and 169.0 MB (CIFAR-100)


SOURCES = {
    "cifar10": CifarSource(
        "cifar10",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        b"labels",
        b"label_names",
    ),
    "cifar100": CifarSource(
        "cifar100",
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        ("train",),
        "test",
        "meta",
        b"fine_labels",
        b"fine_label_names",
    ),
}


@dataclass
class CifarData:
    classes: list[str]
    train: TensorSplit
    test: TensorSplit
    coarse_classes: list[str] | None


def where_to_put(src: CifarSource, data_dir: Path) -> str:
    return (
        f"put {src.archive} (from {src.url}, MD5 {src.md5}) or its extracted {src.folder}/ in "
        f"{data_dir}, or pass --download"
    )


def _reader(src: CifarSource, data_dir: Path, download_to: Path | None) -> Callable[[str], tuple[bytes, str | Path]]:
    """A function name -> (bytes, display path) over the folder or the archive."""
    candidates = [data_dir, data_dir / src.folder]
    for folder in candidates:
        if (folder / src.meta_file).is_file() or (folder / src.test_file).is_file():
            return lambda name: (_read_file(folder / name), folder / name)
    archive = data_dir if data_dir.is_file() else data_dir / src.archive
    if not archive.is_file() and download_to is not None:
        archive = download(
            src.url,
            download_to / src.archive,
            src.md5,
            max_bytes=src.max_bytes,
            manual_hint=where_to_put(src, download_to),
        )
    if not archive.is_file():
        raise ResNetError(f"{src.name} not found in {data_dir}: {where_to_put(src, data_dir)}")
    try:
        tar = tarfile.open(archive)
        names = {m.name: m for m in tar.getmembers()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ResNetError(f"{archive}: not a readable {src.archive} ({e})") from None

    def read(name: str) -> tuple[bytes, str]:
        where = f"{archive}:{src.folder}/{name}"
        member = names.get(f"{src.folder}/{name}")
        if member is None:
            raise ResNetError(f"{where}: missing from the archive")
        try:
            return tar.extractfile(member).read(), where  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ResNetError(f"{where}: cannot read ({e})") from None

    return read


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise ResNetError(f"{path}: missing CIFAR file")
    return path.read_bytes()


def _batch(raw: bytes, where: str | Path, src: CifarSource, num_classes: int | None) -> dict[str, np.ndarray]:
    d = safe_load(raw, where)
    if not isinstance(d, dict) or b"data" not in d or src.label_key not in d:
        raise ResNetError(f"{where}: not a CIFAR batch (expected a dict with b'data' and {src.label_key!r})")
    data = d[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise ResNetError(f"{where}: b'data' is not a uint8 [N, 3072] array (got {shape})")
    out = {"images": data.reshape(-1, 3, 32, 32)}
    for key in (src.label_key, b"coarse_labels"):
        if key not in d:
            continue
        labels = d[key]
        if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
            count = len(labels) if isinstance(labels, (list, np.ndarray)) else type(labels).__name__
            raise ResNetError(f"{where}: {key!r} has {count} entries for {len(data)} images")
        wrong = next((v for v in labels if isinstance(v, bool) or not isinstance(v, (int, np.integer))), None)
        if wrong is not None:
            raise ResNetError(
                f"{where}: {key!r} must be integer class indices, found {type(wrong).__name__} {wrong!r:.40}"
            )
        labels = np.asarray(labels, dtype=np.int64)
        out[key.decode()] = labels.astype(np.int64)
    if num_classes is not None and (
        out[src.label_key.decode()].min(initial=0) < 0 or out[src.label_key.decode()].max(initial=0) >= num_classes
    ):
        raise ResNetError(f"{where}: labels outside 0..{num_classes - 1}")
    return out


def _names(meta: dict, key: bytes, where: object) -> list[str]:
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise ResNetError(f"{where}: not a CIFAR meta file (no {key!r} list)")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def holds_cifar(name: str, data_dir: str | Path) -> bool:
    """Whether ``data_dir`` is one of the layouts :func:`read_cifar` accepts (no file is read)."""
    src, root = SOURCES[name], Path(data_dir)
    return (
        root.is_file()
        or (root / src.archive).is_file()
        or any((f / src.meta_file).is_file() or (f / src.test_file).is_file() for f in (root, root / src.folder))
    )


def read_cifar_classes(name: str, data_dir: str | Path) -> list[str]:
    """The class names of ``name`` in ``data_dir``, from its meta file alone."""
    src = SOURCES[name]
    raw, where = _reader(src, Path(data_dir), None)(src.meta_file)
    return _names(safe_load(raw, where), src.names_key, where)


def read_cifar(name: str, data_dir: str | Path, *, download_to: str | Path | None = None) -> CifarData:
    """Read the official train and test sets of ``name`` ("cifar10" or "cifar100")."""
    src = SOURCES[name]
    read = _reader(src, Path(data_dir), Path(download_to) if download_to is not None else None)
    raw, where = read(src.meta_file)
    meta = safe_load(raw, where)
    classes = _names(meta, src.names_key, where)
    coarse = _names(meta, b"coarse_label_names", where) if name == "cifar100" else None

    def split(files: tuple[str, ...]) -> TensorSplit:
        parts = [_batch(*read(f), src, len(classes)) for f in files]
        key = src.label_key.decode()
        images = torch.from_numpy(np.concatenate([p["images"] for p in parts]))
        labels = torch.from_numpy(np.concatenate([p[key] for p in parts]))
        has_coarse = all("coarse_labels" in p for p in parts) and coarse is not None
        coarse_labels = torch.from_numpy(np.concatenate([p["coarse_labels"] for p in parts])) if has_coarse else None
        return TensorSplit(images, labels, coarse_labels)

    return CifarData(classes, split(src.train_files), split((src.test_file,)), coarse)
