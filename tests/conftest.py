"""Shared fixtures: the real archives in ../shared/data, extracted once per test session."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _extract(archive: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = SHARED_DATA / archive
    if not path.is_file():
        pytest.skip(f"{path} is absent (real data lives beside the repo on development machines and CI)")
    out = tmp_path_factory.mktemp(archive.split(".")[0])
    with tarfile.open(path) as tar:
        tar.extractall(out, filter="data")
    return out


@pytest.fixture(scope="session")
def cifar10_jpg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CIFAR-10 training images as JPEG folders: ``<root>/train/<class>/NNNN.jpg``."""
    return _extract("cifar10-train-jpg.tar.gz", tmp_path_factory) / "cifar10-jpg"


@pytest.fixture(scope="session")
def imagenette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Imagenette at 224x224: ``<root>/{train,val}/<wnid>/*.JPEG``."""
    return _extract("imagenette-224.tar.gz", tmp_path_factory) / "imagenette-224"
