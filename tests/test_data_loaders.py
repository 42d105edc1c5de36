"""Loaders: a pure function of (seed, epoch, rank), disjoint shards, resume mid-epoch; splits and digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.data import Normalization, TensorSplit, fit_normalization, load_dataset, make_eval_loader, make_train_loader
from resnet.data.batched import cutout_batch, cutout_params, pad_crop_flip_batch, random_crop_params
from resnet.data.loaders import CUTOUT_STREAM, BatchMixing, generator
from resnet.data.splits import split_indices
from resnet.errors import ResNetError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", val_split=0.2, split_seed=0)


def test_digits_is_the_embedded_default(digits):
    from sklearn.datasets import load_digits

    assert digits.kind == "tensor" and digits.in_channels == 1 and digits.image_size == (8, 8)
    assert digits.num_classes == 10 and len(digits.train) + len(digits.val) == 1797 and len(digits.val) == 359
    full = load_dataset("digits")
    raw = load_digits().images
    assert full.val is None and torch.equal(
        full.train.images[:, 0], torch.from_numpy(np.rint(raw * 255 / 16).astype(np.uint8))
    )
    assert full.train.images.max() == 255


def test_split_is_deterministic_and_disjoint():
    a_train, a_val, desc = split_indices(50_000, 5000, seed=0)
    b_train, b_val, _ = split_indices(50_000, 5000, seed=0)
    assert torch.equal(a_val, b_val) and len(a_train) == 45_000 and len(a_val) == 5000
    assert len(set(a_train.tolist()) | set(a_val.tolist())) == 50_000  # disjoint and covering
    assert not torch.equal(split_indices(50_000, 5000, seed=1)[1], a_val)
    assert desc["val_indices"] == a_val.tolist() and desc["seed"] == 0
    # The fixed generator makes it the same on every machine and version: pin the first few.
    assert a_val[:3].tolist() == np.sort(np.random.default_rng(0).permutation(50_000)[:5000])[:3].tolist()
    assert len(split_indices(1797, 0.2, 0)[1]) == 359
    assert len(split_indices(100, 1, 0)[1]) == 1  # an int is a count
    for bad in (-1, 1.5, 50_000, 1.0, float("nan")):
        with pytest.raises(ResNetError, match="val-split"):
            split_indices(50_000, bad, 0)


def _batches(loader, epoch):
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_train_order_is_a_function_of_seed_and_epoch(digits):
    norm = fit_normalization(digits, "pixel-mean")
    make = lambda seed: make_train_loader(digits, 64, augment="cifar", normalization=norm, seed=seed)
    loader = make(1)
    assert len(loader) == len(digits.train) // 64
    e0, e0_again, e1 = _batches(loader, 0), _batches(make(1), 0), _batches(loader, 1)
    assert _same(e0, e0_again) and not _same(e0, e1) and not _same(e0, _batches(make(2), 0))
    # Resume mid-epoch: the same batches from index 5 on.
    assert _same(list(loader.start(1, 5)), e1[5:])
    # Every image at most once per epoch: labels of the epoch are a sub-multiset of the split's.
    seen = torch.cat([y for _, y in e0])
    assert len(seen) == 64 * len(loader)
    assert (torch.bincount(seen, minlength=10) <= torch.bincount(digits.train.labels, minlength=10)).all()


def test_cifar_batches_are_normalised_then_padded_with_zero(digits):
    norm = fit_normalization(digits, "pixel-mean")
    loader = make_train_loader(digits, 32, augment="cifar", normalization=norm, seed=3)
    x, y = next(iter(loader))
    idx = loader.batch_indices(0)[0]
    g = generator(3, 0, 0, 0)
    expected = pad_crop_flip_batch(norm.apply(digits.train.images[idx]), *random_crop_params(32, 4, g), pad=4)
    assert torch.equal(x, expected) and torch.equal(y, digits.train.labels[idx])


def test_shards_are_disjoint_and_cover_the_epoch(digits):
    norm = Normalization("none")
    n = len(digits.train)
    shards = [
        make_train_loader(digits, 16, augment="none", normalization=norm, rank=r, world_size=3, seed=7, drop_last=False)
        for r in range(3)
    ]
    idx = [torch.cat(s.batch_indices(2)) for s in shards]
    assert all(len(i) == n // 3 for i in idx)
    union = torch.cat(idx)
    assert len(set(union.tolist())) == len(union) == 3 * (n // 3)
    # The shards are cut from the one global permutation of the epoch.
    single = make_train_loader(digits, 16, augment="none", normalization=norm, seed=7, drop_last=False)
    assert torch.equal(torch.stack(idx, 1).flatten(), torch.cat(single.batch_indices(2))[: 3 * (n // 3)])
    with pytest.raises(ResNetError, match="rank 3"):
        make_train_loader(digits, 16, augment="none", normalization=norm, rank=3, world_size=3)


def test_eval_loader_keeps_order_and_protocols(digits):
    norm = fit_normalization(digits, "channel")
    batches = list(make_eval_loader(digits.val, 100, normalization=norm))
    assert len(batches) == 4 and torch.equal(torch.cat([y for _, y in batches]), digits.val.labels)
    assert torch.equal(torch.cat([x for x, _ in batches]), norm.apply(digits.val.images))
    # The geometry follows the network: at the split's own 8x8 multi-scale is refused; a network
    # trained on image files (image_size None) gets the ImageNet scales.
    with pytest.raises(ResNetError, match="trained on 8x8 images"):
        make_eval_loader(digits.val, 4, protocol="multi-scale", normalization=norm)
    x, _ = next(iter(make_eval_loader(digits.val, 4, protocol="multi-scale", normalization=norm, image_size=None)))
    assert [v.shape for v in x][0] == (4, 1, 224, 224) and x[-1].shape == (4, 1, 640, 640)
    with pytest.raises(ResNetError, match="unknown protocol 'twelve'"):
        make_eval_loader(digits.val, 4, protocol="twelve", normalization=norm)
    with pytest.raises(ResNetError, match="imagenet needs image files"):
        make_train_loader(digits, 4, augment="imagenet", normalization=norm)


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"c{c}").mkdir()
        for i in range(12):
            size = (300, 260) if i % 2 else (260, 340)
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
                root / f"c{c}" / f"{i}.jpg"
            )
    return root


def test_files_loader_same_batches_with_any_workers_and_resume(jpeg_folder, tmp_path):
    b = load_dataset("imagefolder", str(jpeg_folder), cache_dir=str(tmp_path))
    assert b.kind == "files"
    norm = fit_normalization(b, "pixel-mean")
    assert norm.mean.shape == (3, 224, 224) and list(tmp_path.glob("mean-*.npz"))  # cached
    assert torch.equal(fit_normalization(b, "pixel-mean").mean, norm.mean)
    make = lambda workers: make_train_loader(b, 6, augment="imagenet", normalization=norm, seed=1, workers=workers)
    no_workers = _batches(make(0), 1)
    assert len(no_workers) == 4 and no_workers[0][0].shape == (6, 3, 224, 224)
    assert _same(no_workers, _batches(make(2), 1))
    assert _same(list(make(2).start(1, 2)), no_workers[2:])
    assert not _same(no_workers, _batches(make(0), 2))
    views, y = next(iter(make_eval_loader(b.train, 3, protocol="multi-scale", normalization=norm, workers=1)))
    assert [v.shape[-1] for v in views] == [224, 256, 384, 480, 640] and y.tolist() == [0, 0, 0]
    # Batch size 1 keeps the whole image at each scale (fully convolutional).
    views, _ = next(iter(make_eval_loader(b.train, 1, protocol="multi-scale", normalization=norm)))
    assert views[0].shape[-2:] == (round(224 * 340 / 260), 224)  # image 0 is 260 wide, 340 high


def test_normalization_rejects_unknown_mode(digits):
    with pytest.raises(ResNetError, match="unknown normalization 'zca'"):
        fit_normalization(digits, "zca")
    with pytest.raises(ResNetError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    assert isinstance(digits.train, TensorSplit)


def test_cutout_zeroes_one_square_per_image_clipped_at_the_border():
    x = torch.ones(4, 3, 32, 32)
    cy, cx = torch.tensor([16, 0, 31, 5]), torch.tensor([16, 0, 20, 31])
    out = cutout_batch(x.clone(), cy, cx, 16)
    zero = out == 0
    assert (zero.all(1) == zero.any(1)).all()  # every channel of a pixel, or none
    # Rows and columns centre - 8 .. centre + 7, clipped: 16 x 16 inside, 8 x 8 in a corner, 9 x 16 and 13 x 9 at edges.
    assert zero[:, 0].sum((1, 2)).tolist() == [256, 64, 9 * 16, 13 * 9]
    assert zero[0, 0, 8:24, 8:24].all() and not zero[0, 0, 7].any() and not zero[0, 0, 24].any()
    assert zero[1, 0, :8, :8].all() and zero[3, 0, :13, 23:].all()
    assert torch.equal(out[~zero], x[~zero])  # the rest untouched


def test_cutout_batches_keep_the_crops_and_flips_of_the_run_without_it(digits):
    norm = fit_normalization(digits, "channel")
    plain = make_train_loader(digits, 32, augment="cifar", normalization=norm, seed=3)
    cut = make_train_loader(digits, 32, augment="cifar", normalization=norm, seed=3, cutout=4)
    for i, ((x, y), (xc, yc)) in enumerate(zip(_batches(plain, 1), _batches(cut, 1))):
        # The same views, each with the square of its own stream (seed, epoch, rank, batch, 1).
        squares = cutout_params(len(x), 8, 8, generator(3, 1, 0, i, CUTOUT_STREAM))
        assert torch.equal(y, yc) and torch.equal(xc, cutout_batch(x.clone(), *squares, 4))
        assert not torch.equal(xc, x)
    # A pure function of (seed, epoch, batch), as the crops are: the same on a resume mid-epoch.
    again = make_train_loader(digits, 32, augment="cifar", normalization=norm, seed=3, cutout=4)
    assert _same(list(again.start(1, 5)), _batches(cut, 1)[5:])
    with pytest.raises(ResNetError, match="option 'cutout': 9 px is larger than the 8x8 training images"):
        next(iter(make_train_loader(digits, 32, augment="none", normalization=norm, cutout=9)))


def _mixed(mixing, key, b=16, h=8, w=8):
    """A batch of ``b`` distinct random images of classes 0..b-1, mixed: the targets then say which
    image each one was mixed with and by how much."""
    x, y = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(key)), torch.arange(b)
    xm, t = mixing.apply(x.clone(), y, (7, 0, 0, key))
    return x, xm, t


def _partner_and_weight(t, i):
    others = t[i].clone()
    others[i] = -1
    return int(others.argmax()), float(t[i, i])


def test_mixup_blends_each_image_and_its_label_with_another_of_the_batch():
    mixing = BatchMixing(mixup=1.0, num_classes=16)
    x, xm, t = _mixed(mixing, 1)
    assert t.shape == (16, 16) and torch.allclose(t.sum(1), torch.ones(16))
    lams = set()
    for i in range(16):
        j, lam = _partner_and_weight(t, i)
        if lam == 1.0:  # paired with itself
            assert torch.equal(xm[i], x[i])
            continue
        assert t[i, j] == pytest.approx(1 - lam) and torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)
        lams.add(round(lam, 6))
    assert len(lams) == 1  # one weight for the batch
    # A pure function of its key: the same batch again, another one differently.
    assert torch.equal(_mixed(mixing, 1)[1], xm) and not torch.equal(_mixed(mixing, 2)[2], t)


def test_cutmix_pastes_a_box_of_another_image_and_weights_the_labels_by_its_area():
    mixing = BatchMixing(cutmix=1.0, num_classes=16)
    for key in range(5):
        x, xm, t = _mixed(mixing, key)
        for i in range(16):
            j, kept = _partner_and_weight(t, i)
            if j == i or kept == 1.0:
                continue
            mine = xm[i] == x[i]
            assert (mine | (xm[i] == x[j])).all()  # each pixel its own or the partner's
            assert mine.all(0).float().mean() == pytest.approx(kept)  # the label weight is the area kept
            box = (~mine.all(0)).nonzero()
            (y0, x0), (y1, x1) = box.min(0).values, box.max(0).values
            assert (~mine.all(0))[y0 : y1 + 1, x0 : x1 + 1].all()  # one rectangle


def test_with_mixup_and_cutmix_each_batch_takes_one_of_them():
    mixing = BatchMixing(mixup=1.0, cutmix=1.0, num_classes=16)
    kinds = set()
    for key in range(20):
        x, xm, t = _mixed(mixing, key)
        mixed = [i for i in range(16) if _partner_and_weight(t, i)[1] < 1.0]
        if mixed:  # (a CutMix box of a weight near 1 can be empty on 8 x 8 images)
            kinds.add("cutmix" if (xm[mixed[0]] == x[mixed[0]]).any() else "mixup")
    assert kinds == {"mixup", "cutmix"}
    with pytest.raises(ResNetError, match="option 'mixup': -1.0 must not be negative"):
        BatchMixing(mixup=-1.0, num_classes=10)


def test_a_mixing_loader_mixes_the_batches_it_would_give_without_it(digits):
    norm = fit_normalization(digits, "channel")
    plain = make_train_loader(digits, 32, augment="cifar", normalization=norm, seed=3)
    mixed = make_train_loader(digits, 32, augment="cifar", normalization=norm, seed=3, mixup=0.4, cutout=2)
    for i, ((x, y), (xm, t)) in enumerate(zip(_batches(plain, 1), _batches(mixed, 1))):
        want_x, want_t = BatchMixing(cutout=2, mixup=0.4, num_classes=10).apply(x, y, (3, 1, 0, i))
        assert torch.equal(xm, want_x) and torch.equal(t, want_t) and t.shape == (32, 10)
    assert _same(list(mixed.start(1, 5)), _batches(mixed, 1)[5:])  # resumes mid-epoch
