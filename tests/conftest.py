"""Shared fixtures: the real archives in ../shared/data, extracted once per test session."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """What the code caches by default (decoded images, --compile auto's trials) goes to this session's
    folder, not the user's: a test's stand-in timings never reach a real run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESNET_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def cifar10_jpg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CIFAR-10 training images as JPEG folders: ``<root>/train/<class>/NNNN.jpg``."""
    return _extract("cifar10-train-jpg.tar.gz", tmp_path_factory) / "cifar10-jpg"


@pytest.fixture(scope="session")
def imagenette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Imagenette at 224x224: ``<root>/{train,val}/<wnid>/*.JPEG``."""
    return _extract("imagenette-224.tar.gz", tmp_path_factory) / "imagenette-224"


# -- weights (weights helper) ------------------------------------------------------------------------

# A timm ResNet's pretrained_cfg, as its config.json gives it: mean and std 0.5 (not ImageNet's), crop 0.95, bicubic.
TIMM_CFG = {
    "input_size": [3, 224, 224],
    "crop_pct": 0.95,
    "interpolation": "bicubic",
    "mean": [0.5] * 3,
    "std": [0.5] * 3,
}


# -- training (train helper) -------------------------------------------------------------------------

TINY_TRAIN = {
    "model": "cifar_resnet",
    "depth": 8,
    "data": "digits",
    "batch_size": 32,
    "iterations": 40,
    "log_every": 5,
    "eval_every": 20,
    "quiet": True,
}


def tiny_train_args(run_dir: Path, **changes: object) -> list[str]:
    """``resnet train`` flags for a few seconds of ResNet-8 on the embedded digits."""
    args = ["train", "--run-dir", str(run_dir)]
    for name, value in {**TINY_TRAIN, **changes}.items():
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [f"--no-{flag[2:]}"] if value is False else [flag, str(value)]
    return args


def after_step(trainer: Any, monkeypatch: pytest.MonkeyPatch, step: int, action: Any) -> None:
    """Call ``action()`` right after ``trainer`` has taken step ``step`` (a crash, a slower machine, ...)."""
    take = trainer._train_step

    def step_then_act(batches: Any) -> None:
        take(batches)
        if trainer.step == step:
            action()

    monkeypatch.setattr(trainer, "_train_step", step_then_act)


def crash_after(trainer: Any, monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """``trainer`` raises RuntimeError("crash") right after step ``step``, as a process dying there would stop."""

    def crash() -> None:
        raise RuntimeError("crash")

    after_step(trainer, monkeypatch, step, crash)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny training run (ResNet-8, digits, 40 iterations): its run folder."""
    from resnet.train import resolve, train

    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(resolve({**TINY_TRAIN, "run_dir": str(run_dir)}))
    return run_dir


# -- data (data helper) ------------------------------------------------------------------------------


def py2_pickle(obj: object) -> bytes:
    """``obj`` laid out as Python 2's cPickle protocol 2 writes it: the format of the official CIFAR
    files (byte strings as SHORT_BINSTRING/BINSTRING, arrays via ``numpy.core.multiarray._reconstruct``)."""
    import struct

    import numpy as np

    out = bytearray(b"\x80\x02")

    def w(o: object) -> None:
        if o is None:
            out.extend(b"N")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            out.extend(
                b"K" + bytes([o])
                if 0 <= o < 256
                else b"M" + struct.pack("<H", o)
                if 0 <= o < 65536
                else b"J" + struct.pack("<i", o)
            )
        elif isinstance(o, bytes):
            out.extend((b"U" + bytes([len(o)]) if len(o) < 256 else b"T" + struct.pack("<I", len(o))) + o)
        elif isinstance(o, tuple):
            if 1 <= len(o) <= 3:
                for x in o:
                    w(x)
                out.extend({1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(o)])
            else:
                out.extend(b"(")
                for x in o:
                    w(x)
                out.extend(b"t")
        elif isinstance(o, (list, dict)):
            out.extend(b"]" if isinstance(o, list) else b"}")
            if o:
                out.extend(b"(")
                for x in o if isinstance(o, list) else [v for kv in o.items() for v in kv]:
                    w(x)
                out.extend(b"e" if isinstance(o, list) else b"u")
        elif isinstance(o, np.ndarray):
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            w((0,))
            w(b"b")
            out.extend(b"\x87R(")
            w(1)
            w(tuple(o.shape))
            out.extend(b"cnumpy\ndtype\n")
            w((o.dtype.str[1:].encode(), 0, 1))
            out.extend(b"R")
            w((3, o.dtype.str[:1].encode(), None, None, None, -1, -1, 0))
            out.extend(b"b")
            w(False)
            w(np.ascontiguousarray(o).tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(o))

    w(obj)
    out.extend(b".")
    return bytes(out)


def make_cifar(root: Path, name: str = "cifar10", per_batch: int = 20, test: int = 30, seed: int = 0) -> Path:
    """Write a small dataset in the official python format under ``root``; returns its folder.

    Pixels and labels are seeded random; image i of a batch has label ``i % classes`` so tests can
    check the reading order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
        (folder / "batches.meta").write_bytes(
            py2_pickle({b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072})
        )
        files = [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]
        for file, n in files:
            batch = {
                b"batch_label": file.encode(),
                b"labels": [i % 10 for i in range(n)],
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"filenames": [f"img_{i}.png".encode() for i in range(n)],
            }
            (folder / file).write_bytes(py2_pickle(batch))
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        fine = [f"fine{i:02d}".encode() for i in range(100)]
        coarse = [f"coarse{i:02d}".encode() for i in range(20)]
        (folder / "meta").write_bytes(py2_pickle({b"fine_label_names": fine, b"coarse_label_names": coarse}))
        for file, n in (("train", 5 * per_batch), ("test", test)):
            batch = {
                b"filenames": [b"x.png"] * n,
                b"batch_label": file.encode(),
                b"fine_labels": [i % 100 for i in range(n)],
                b"coarse_labels": [i % 100 // 5 for i in range(n)],
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            }
            (folder / file).write_bytes(py2_pickle(batch))
    return folder


def tar_folder(folder: Path, archive: Path) -> Path:
    """``folder`` packed as the official archives are: a .tar.gz holding ``<folder name>/...``."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive
