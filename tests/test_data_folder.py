"""Image folders, the small-image cache and bad files, on folders the tests write (plus real subsets)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.data import Normalization, load_dataset, make_eval_loader, make_train_loader
from resnet.data import cache as cache_mod
from resnet.data.images import decode_rgb
from resnet.errors import ResNetError


def save(path: Path, size: tuple[int, int], seed: int, fmt: str | None = None) -> np.ndarray:
    """A seeded random RGB image of ``size`` = (W, H) at ``path``; returns its pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


def small_folder(root: Path, per_class: int = 3, size: tuple[int, int] = (16, 12)) -> dict[str, np.ndarray]:
    """Lossless images in three classes, written out of order and with mixed extensions."""
    pixels = {}
    for c, cls in enumerate(["zebra", "ant", "moth"]):
        for i in range(per_class):
            ext = ["png", "bmp", "PNG"][i % 3]
            path = root / cls / f"{per_class - i:02d}.{ext}"
            pixels[str(path)] = save(path, size, seed=10 * c + i, fmt="PNG" if ext.lower() == "png" else "BMP")
    return pixels


def test_small_folder_becomes_tensor_via_cache(tmp_path):
    pixels = small_folder(tmp_path / "data")
    b = load_dataset("imagefolder", str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    assert b.kind == "tensor" and b.image_size == (12, 16) and b.classes == ["ant", "moth", "zebra"]
    assert b.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Sorted by path within a class: ant/01.PNG first; pixels exact (PNG and BMP are lossless).
    first = str(tmp_path / "data" / "ant" / "01.PNG")
    assert torch.equal(b.train.images[0], torch.from_numpy(pixels[first]).permute(2, 0, 1))
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".npy")  # no temp files


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    small_folder(tmp_path / "data")
    kw = dict(cache_dir=str(tmp_path / "cache"))
    first = load_dataset("imagefolder", str(tmp_path / "data"), **kw)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(cache_mod, "build_cache", no_decoding)
    again = load_dataset("imagefolder", str(tmp_path / "data"), **kw)
    assert torch.equal(again.train.images, first.train.images)
    monkeypatch.undo()
    # A changed file (new size and mtime) makes a new entry with the new pixels.
    changed = tmp_path / "data" / "moth" / "03.png"
    new = save(changed, (16, 12), seed=99, fmt="PNG")
    os.utime(changed, ns=(1, 1))
    b = load_dataset("imagefolder", str(tmp_path / "data"), **kw)
    assert torch.equal(b.train.images[5], torch.from_numpy(new).permute(2, 0, 1))  # moth: 01, 02, 03
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_large_or_mixed_images_stay_files(tmp_path):
    save(tmp_path / "a" / "x.jpg", (100, 80), 0)
    save(tmp_path / "a" / "y.jpeg", (100, 80), 1)
    save(tmp_path / "b" / "z.webp", (120, 90), 2)
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    b = load_dataset("imagefolder", str(tmp_path), cache_dir=str(tmp_path / ".cache"))
    assert b.kind == "files" and b.image_size is None
    assert [(Path(p).name, y) for p, y in b.train.samples] == [("x.jpg", 0), ("y.jpeg", 0), ("z.webp", 1)]


def test_train_val_layout(tmp_path):
    for split in ("train", "val"):
        small_folder(tmp_path / split, per_class=4)
    b = load_dataset("imagefolder", str(tmp_path), cache_dir=str(tmp_path / ".c"))
    assert (
        len(b.train) == 12
        and len(b.val) == 12
        and b.test is None
        and b.split["val_source"] == "the source's val folder"
    )
    b = load_dataset("imagefolder", str(tmp_path), cache_dir=str(tmp_path / ".c"), val_split=0.25)
    assert len(b.train) == 9 and len(b.val) == 3 and len(b.test) == 12  # val/ becomes test


def test_class_mismatch_names_both_folders(tmp_path):
    small_folder(tmp_path / "train")
    small_folder(tmp_path / "val")
    (tmp_path / "val" / "moth").rename(tmp_path / "val" / "mouth")
    with pytest.raises(
        ResNetError,
        match=r"class folders differ between .*/train and .*/val: missing in val "
        r"\['moth'\], extra in val \['mouth'\]",
    ):
        load_dataset("imagefolder", str(tmp_path))


def test_empty_class_folder(tmp_path):
    small_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ResNetError, match=r"/empty: empty class folder"):
        load_dataset("imagefolder", str(tmp_path))


def test_missing_folder(tmp_path):
    with pytest.raises(ResNetError, match=r"/nowhere: image folder not found"):
        load_dataset("imagefolder", str(tmp_path / "nowhere"))


@pytest.mark.parametrize("size", [(16, 12), (100, 80)])  # the cache path and the files path
def test_non_image_file_is_named_or_skipped(tmp_path, size, caplog):
    for cls in ("a", "b"):
        for i in range(3):
            save(tmp_path / "d" / cls / f"{i}.png", size, i)
    bad = tmp_path / "d" / "a" / "1.png"
    bad.write_bytes(b"<html>not a png</html>")
    with pytest.raises(ResNetError, match=rf"{bad}: not a readable image .*--skip-bad-images") as e:
        load_dataset("imagefolder", str(tmp_path / "d"), cache_dir=str(tmp_path / "c"))
    assert "\n" not in str(e.value)
    with caplog.at_level(logging.WARNING):
        b = load_dataset("imagefolder", str(tmp_path / "d"), cache_dir=str(tmp_path / "c"), skip_bad_images=True)
    assert b.skipped == [str(bad)] and b.split["skipped_images"] == 1
    assert "skipped 1 unreadable images" in caplog.text
    assert b.train.labels.tolist() == [0, 0, 1, 1, 1]  # nothing else dropped, nothing mislabelled


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])


def test_truncated_small_image_fails_the_cache_build(tmp_path):
    small_folder(tmp_path / "d")
    save(tmp_path / "d" / "ant" / "zz.jpg", (16, 12), 5)
    _truncate(tmp_path / "d" / "ant" / "zz.jpg")
    with pytest.raises(ResNetError, match=r"ant/zz\.jpg: (cannot decode|not a readable) image"):
        load_dataset("imagefolder", str(tmp_path / "d"), cache_dir=str(tmp_path / "c"))
    assert not list((tmp_path / "c").glob("*.npy"))
    b = load_dataset("imagefolder", str(tmp_path / "d"), cache_dir=str(tmp_path / "c"), skip_bad_images=True)
    assert b.kind == "tensor" and len(b.train) == 9 and b.skipped[0].endswith("ant/zz.jpg")


def test_truncated_large_image_fails_in_the_loader(tmp_path):
    for cls in ("a", "b"):
        for i in range(4):
            save(tmp_path / cls / f"{i}.jpg", (300, 260), i)
    _truncate(tmp_path / "b" / "2.jpg")  # the header is intact: only decoding finds it
    norm = Normalization("none")
    b = load_dataset("imagefolder", str(tmp_path), cache_dir=str(tmp_path / "c"))
    loader = make_eval_loader(b.train, 8, protocol="center", normalization=norm)
    with pytest.raises(ResNetError, match=r"b/2\.jpg: cannot decode image .*--skip-bad-images"):
        list(loader)
    b = load_dataset("imagefolder", str(tmp_path), cache_dir=str(tmp_path / "c"), skip_bad_images=True)
    train = make_train_loader(b, 8, augment="imagenet", normalization=norm, drop_last=False)
    ((x, y),) = list(train)
    assert x.shape == (7, 3, 224, 224) and y.tolist().count(1) == 3 and train.skipped == [1]


def test_draft_decodes_large_jpegs_at_reduced_size(tmp_path):
    save(tmp_path / "big.jpg", (1024, 768), 0)
    assert decode_rgb(tmp_path / "big.jpg").shape == (768, 1024, 3)
    assert decode_rgb(tmp_path / "big.jpg", min_side=200).shape == (384, 512, 3)  # 1/2: 1/4 would be < 200
    assert decode_rgb(tmp_path / "big.jpg", min_side=90).shape == (96, 128, 3)  # 1/8
    assert decode_rgb(tmp_path / "big.jpg", min_side=500).shape == (768, 1024, 3)


def _subset(src: Path, dst: Path, per_class: int) -> Path:
    for cls in sorted(os.listdir(src)):
        (dst / cls).mkdir(parents=True)
        for name in sorted(os.listdir(src / cls))[:per_class]:
            (dst / cls / name).symlink_to(src / cls / name)
    return dst


def test_real_cifar10_jpeg_subset_goes_through_the_cache(cifar10_jpg, tmp_path):
    root = _subset(cifar10_jpg / "train", tmp_path / "cifar", per_class=40)
    b = load_dataset("imagefolder", str(root), cache_dir=str(tmp_path / "cache"), val_split=0.1)
    assert b.kind == "tensor" and b.image_size == (32, 32) and len(b.train) + len(b.val) == 400
    assert b.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert 40 < b.train.images.float().mean() < 200  # real photographs, not zeros


def test_real_imagenette_subset_is_files(imagenette, tmp_path):
    train = _subset(imagenette / "train", tmp_path / "in" / "train", per_class=3)
    _subset(imagenette / "val", tmp_path / "in" / "val", per_class=2)
    b = load_dataset("imagefolder", str(train.parent), cache_dir=str(tmp_path / "cache"))
    assert b.kind == "files" and b.classes[0] == "n01440764" and len(b.train) == 30 and len(b.val) == 20
    x, y = next(iter(make_eval_loader(b.val, 4, protocol="ten-crop", normalization=Normalization("none"))))
    assert x.shape == (4, 10, 3, 224, 224) and y.tolist() == [0, 0, 1, 1]


# --- folders that cannot be read as they are (issue 22, item 15) -----------------------------------


def _symlink_loop(root: Path) -> str:
    os.symlink("y.png", root / "a" / "x.png")
    os.symlink("x.png", root / "a" / "y.png")
    return str(root / "a" / "x.png")


def _undecodable_file(root: Path) -> str:
    os.rename(root / "a" / "1.png", os.fsencode(root / "a") + b"/\xff1.png")
    return f"{root}/a/\\xff1.png"


def _undecodable_class(root: Path) -> str:
    os.rename(root / "b", os.fsencode(root) + b"/b\xff")
    return f"{root}/b\\xff"


def _refuse_listing(monkeypatch, folder: str) -> str:
    """chmod 000 as root still reads: the folder's listing refuses instead (os.walk lists with scandir too)."""
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == folder:
            raise PermissionError(13, "Permission denied", folder)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return folder


def _unreadable_class(root: Path, monkeypatch) -> str:
    return _refuse_listing(monkeypatch, str(root / "b"))


@pytest.mark.parametrize(
    ("make", "error", "skipped"),
    [
        (_symlink_loop, r"{bad}: not a readable image \(OSError: .*symbolic links.*--skip-bad-images", 2),
        (_undecodable_file, r"{bad}: the file name is not valid UTF-8; rename it .*--skip-bad-images", 1),
        (_undecodable_class, r"{bad}: the class folder's name is not valid UTF-8; rename it$", None),
        (_unreadable_class, r"cannot read the class folder {bad}: Permission denied$", None),
    ],
)
def test_unusable_names_and_folders_are_one_line(tmp_path, monkeypatch, make, error, skipped):
    root = tmp_path / "d"
    for cls in ("a", "b"):
        for i in range(3):
            save(root / cls / f"{i}.png", (16, 12), i)
    bad = make(root, monkeypatch) if make is _unreadable_class else make(root)
    for skip in (False, True):
        if skipped is None or not skip:
            with pytest.raises(ResNetError, match=error.format(bad=re.escape(bad))) as e:
                load_dataset("imagefolder", str(root), cache_dir=str(tmp_path / "c"), skip_bad_images=skip)
            assert "\n" not in str(e.value)
            str(e.value).encode("utf-8")  # printable: no lone surrogates
        else:
            b = load_dataset("imagefolder", str(root), cache_dir=str(tmp_path / "c"), skip_bad_images=True)
            assert len(b.skipped) == skipped and bad in b.skipped and len(b.train) == 6 - (skipped == 1)
            json.dumps(b.skipped).encode("utf-8")


def test_predict_names_a_folder_it_cannot_read(tmp_path, monkeypatch):
    from resnet.predict import image_paths

    for sub in ("ok", "locked"):
        save(tmp_path / "p" / sub / "0.png", (16, 12), 0)
    folder = _refuse_listing(monkeypatch, str(tmp_path / "p" / "locked"))
    with pytest.raises(ResNetError, match=rf"^cannot read the folder {re.escape(folder)}: Permission denied$"):
        image_paths([tmp_path / "p"])


@pytest.mark.parametrize(
    ("values", "expect"),
    [
        (np.linspace(0, 1, 12 * 16, dtype=np.float32), "scaled"),  # 0..1: x 255, not black
        (np.linspace(0, 255, 12 * 16, dtype=np.float32), "pillow"),  # 0..255: as Pillow reads it
        (np.linspace(-1, 1, 12 * 16, dtype=np.float32), r"values in \[-1, 1\]; only 0\.\.1 or 0\.\.255"),
        (np.full(12 * 16, np.nan, dtype=np.float32), r"values in \[nan, nan\]"),
    ],
    ids=["0..1", "0..255", "negative", "nan"],
)
def test_a_float_tiff_is_scaled_or_refused(tmp_path, values, expect):
    grey = values.reshape(12, 16)
    path = tmp_path / "f.tif"
    Image.fromarray(grey, mode="F").save(path)
    with Image.open(path) as im:
        assert im.mode == "F"
    if expect == "scaled":
        want = np.rint(grey.astype(np.float64) * 255).astype(np.uint8)
        assert (decode_rgb(path) == want[:, :, None]).all() and decode_rgb(path).max() == 255
    elif expect == "pillow":
        with Image.open(path) as im:
            assert (decode_rgb(path) == np.asarray(im.convert("RGB"))).all()
    else:
        with pytest.raises(ResNetError, match=rf"{re.escape(str(path))}: a 32-bit float image with {expect}"):
            decode_rgb(path)
