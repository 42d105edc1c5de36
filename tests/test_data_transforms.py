"""The paper's transforms: the batched path equals the per-image one, and its randomness is uniform."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.data import Normalization, TensorSplit, fit_normalization
from resnet.data import transforms as T
from resnet.data.batched import PadCropFlipNormalize, flip_batch, pad_crop_flip_batch, random_crop_params
from resnet.errors import ResNetError
from resnet.predict import load_image


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_batched_crop_flip_equals_per_image(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), generator=g).to(dtype)
    dy, dx, flip = random_crop_params(64, 4, g)
    assert flip.any() and (~flip).any() and dy.min() == 0 and dy.max() == 8
    out = pad_crop_flip_batch(x, dy, dx, flip, pad=4)
    ref = torch.stack([T.pad_crop_flip(x[i], int(dy[i]), int(dx[i]), bool(flip[i]), 4) for i in range(64)])
    assert out.dtype == dtype and torch.equal(out, ref)


@pytest.mark.parametrize("mode", ["pixel-mean", "channel", "none"])
def test_fused_crop_normalize_equals_normalize_then_crop(mode):
    """The loader's fast path: bit-identical to normalising, zero-padding, cropping and flipping."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (200, 3, 32, 32), generator=g, dtype=torch.uint8)
    norm = fit_normalization(TensorSplit(x, torch.zeros(200, dtype=torch.long)), mode)
    dy, dx, flip = random_crop_params(200, 4, g)
    fused = PadCropFlipNormalize(x, *norm.shift_divisor(3, 32, 32, torch.device("cpu")), pad=4)
    idx = torch.randperm(200, generator=g)
    out = fused(idx, dy, dx, flip)
    ref = pad_crop_flip_batch(norm.apply(x[idx]), dy, dx, flip, pad=4)
    assert out.dtype == torch.float32 and torch.equal(out, ref)
    corner = (dy == 0) & (dx == 0)  # top-left crops: 4 rows of padding, exactly zero after normalising
    assert corner.any() and out[corner][:, :, :4].abs().sum() == 0


def test_pad_crop_reference_semantics():
    x = torch.arange(1, 17, dtype=torch.uint8).view(1, 4, 4)
    assert torch.equal(T.pad_crop_flip(x, 4, 4, False), x)  # offset (pad, pad) is the original
    shifted = T.pad_crop_flip(x, 0, 0, False)  # top-left: 4 rows and columns of zero padding
    assert shifted.sum() == 0
    one = T.pad_crop_flip(x, 3, 5, True)
    assert torch.equal(one, torch.flip(torch.nn.functional.pad(x, (4, 4, 4, 4))[:, 3:7, 5:9], dims=[2]))


def test_offsets_uniform_and_flip_rate_half():
    n = 90_000
    dy, dx, flip = random_crop_params(n, 4, torch.Generator().manual_seed(123))
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=9).double()
        assert len(counts) == 9  # nothing outside 0..8
        chi2 = float(((counts - n / 9) ** 2 / (n / 9)).sum())
        assert chi2 < 26.12  # chi-square, 8 degrees of freedom, p = 0.001
    # Binomial(n, 1/2): 4 standard deviations either side.
    assert abs(int(flip.sum()) - n / 2) < 4 * (n / 4) ** 0.5
    # dy and dx are independent: the joint 81 cells are uniform too (80 dof, p = 0.001 -> 124.8).
    joint = torch.bincount(dy * 9 + dx, minlength=81).double()
    assert float(((joint - n / 81) ** 2 / (n / 81)).sum()) < 124.8


def test_flip_batch():
    x = torch.arange(24.0).view(2, 1, 3, 4)
    out = flip_batch(x, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_scale_augment_sides_and_crops():
    g = torch.Generator().manual_seed(0)
    sides = [T.random_side(g) for _ in range(4000)]
    assert min(sides) == 256 and max(sides) == 480  # both ends reachable
    assert abs(np.mean(sides) - 368) < 4  # uniform: mean (256 + 480) / 2
    img = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    out = T.scale_augment(img, g, side=256)
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    # With the same generator state, the view is a crop of the resized image (or its mirror).
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    view = T.scale_augment(img, g1, side=300)
    big = T.resize_shorter(img, 300)
    assert big.shape == (3, 300, 400)
    top, left = int(torch.randint(0, 77, (), generator=g2)), int(torch.randint(0, 177, (), generator=g2))
    crop = big[:, top : top + 224, left : left + 224]
    assert torch.equal(view, crop) or torch.equal(view, crop.flip(-1))


def test_lighting_is_alexnet_pca_noise():
    x = torch.zeros(20_000, 3, 1, 1)
    out = T.lighting(x, torch.Generator().manual_seed(0), std=0.1)
    offsets = out[:, :, 0, 0] / 255.0
    # The offsets lie in the span of the eigenvectors with variance (0.1 * eigval)^2 along each.
    coords = offsets @ T.PCA_EIGVEC  # eigvec columns are the principal directions
    assert torch.allclose(coords.std(0), 0.1 * T.PCA_EIGVAL, rtol=0.05)
    assert torch.equal(T.lighting(x, torch.Generator().manual_seed(0), std=0.1), out)  # seeded
    # Each image gets one RGB offset for all its pixels.
    wide = T.lighting(torch.zeros(2, 3, 4, 4), torch.Generator().manual_seed(1))
    assert torch.equal(wide, wide[:, :, :1, :1].expand(-1, -1, 4, 4)) and wide.abs().sum() > 0


def test_eval_views():
    img = torch.randint(0, 256, (3, 256, 320), dtype=torch.uint8)
    centre = T.center_view(img)
    assert torch.equal(centre, img[:, 16:240, 48:272])
    ten = T.ten_crop(img)
    assert ten.shape == (10, 3, 224, 224)
    assert torch.equal(ten[0], img[:, :224, :224]) and torch.equal(ten[3], img[:, 32:, 96:])
    assert torch.equal(ten[4], centre) and torch.equal(ten[9], centre.flip(-1))
    scales = T.multi_scale(img)
    assert [tuple(v.shape[-2:]) for v in scales] == [(224, 280), (256, 320), (384, 480), (480, 600), (640, 800)]
    assert all(v.shape[-2] == v.shape[-1] for v in T.multi_scale(img, square=True))
    batch = torch.stack([img, img])
    assert torch.equal(T.ten_crop(batch)[1], ten)  # batched views are the same views


def test_pixel_mean_normalization_round_trip():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    split = TensorSplit(images, torch.zeros(50, dtype=torch.int64))
    norm = fit_normalization(split, "pixel-mean")
    out = norm.apply(images)
    assert out.dtype == torch.float32 and out.mean(0).abs().max() < 1e-5  # every pixel's mean removed
    assert torch.allclose(out, (images.float() - images.double().mean(0).float()) / 255, atol=1e-6)
    back = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert torch.equal(back.apply(images), out)
    assert norm.apply(torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)  # other sizes: resized mean


def test_channel_normalization():
    images = torch.randint(0, 256, (40, 3, 6, 6), dtype=torch.uint8)
    norm = fit_normalization(TensorSplit(images, torch.zeros(40, dtype=torch.int64)), "channel")
    out = norm.apply(images)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.equal(Normalization.from_dict(norm.to_dict()).apply(images), out)


def test_load_image_for_predict(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    none = Normalization("none")
    x = load_image(tmp_path / "x.png", none, image_size=(40, 50))
    assert x.shape == (1, 3, 40, 50) and torch.allclose(x[0], torch.from_numpy(pixels).permute(2, 0, 1) / 255)
    assert load_image(tmp_path / "x.png", none, image_size=(8, 8), in_channels=1).shape == (1, 1, 8, 8)
    assert load_image(tmp_path / "x.png", none, protocol="ten-crop").shape == (1, 10, 3, 224, 224)
    assert [v.shape[-2] for v in load_image(tmp_path / "x.png", none, protocol="multi-scale")] == list(T.SCALES)


def test_test_views_at_a_small_networks_own_size():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    # CIFAR-sized images: single and center are the image itself (the paper's single view).
    assert torch.equal(T.test_views(x, "single", image_size=(32, 32)), x)
    assert torch.equal(T.test_views(x, "center", image_size=(32, 32)), x)
    # Other shapes: single squashes the whole image, center keeps the aspect ratio and crops the middle.
    wide = torch.randint(0, 256, (3, 40, 64), generator=g, dtype=torch.uint8)
    assert torch.equal(T.test_views(wide, "single", image_size=(32, 32)), T.resize(wide, (32, 32)))
    assert torch.equal(T.test_views(wide, "center", image_size=(32, 32)), T.resize(wide, (32, 51))[..., :, 9:41])
    # Ten-crop after normalisation: corners and centre of the 4-pixel zero-padded image, then mirrors.
    z = x.float() - 128
    views = T.padded_views(T.test_views(z, "ten-crop", image_size=(32, 32)), "ten-crop", (32, 32))
    padded = torch.nn.functional.pad(z, (4, 4, 4, 4))
    assert views.shape == (2, 10, 3, 32, 32)
    assert torch.equal(views[:, 0], padded[..., :32, :32]) and torch.equal(views[:, 3], padded[..., 8:, 8:])
    assert (
        torch.equal(views[:, 4], z)
        and torch.equal(views[:, 9], z.flip(-1))
        and torch.equal(views[:, 5], views[:, 0].flip(-1))
    )
    assert torch.equal(T.padded_views(z, "single", (32, 32)), z) and torch.equal(T.padded_views(z, "ten-crop", None), z)
    with pytest.raises(ResNetError, match="trained on 32x32 images"):
        T.test_views(x, "multi-scale", image_size=(32, 32))
    # Flip: the single view and its mirror image, for small and ImageNet-style networks alike.
    flipped = T.padded_views(T.test_views(z, "flip", image_size=(32, 32)), "flip", (32, 32))
    assert (
        flipped.shape == (2, 2, 3, 32, 32) and torch.equal(flipped[:, 0], z) and torch.equal(flipped[:, 1], z.flip(-1))
    )
    big = torch.randint(0, 256, (3, 256, 300), generator=g, dtype=torch.uint8).float()
    both = T.padded_views(T.test_views(big, "flip"), "flip", None)
    assert both.shape == (2, 3, 224, 224) and torch.equal(both[1], T.center_view(big).flip(-1))


def test_test_views_of_an_imagenet_network():
    x = torch.randint(0, 256, (3, 300, 260), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert torch.equal(T.test_views(x, "single"), T.center_view(x))  # files are scored at 224 either way
    assert torch.equal(T.test_views(x, "center"), T.center_view(x)) and T.center_view(x).shape == (3, 224, 224)
    assert torch.equal(T.test_views(x, "ten-crop"), T.ten_crop(x))
    assert [v.shape[-1] for v in T.test_views(x, "multi-scale")] == list(T.SCALES)


def test_to_channels():
    rgb = torch.tensor([[[10]], [[200]], [[30]]], dtype=torch.uint8)
    assert T.to_channels(rgb, 1).tolist() == [[[round(0.299 * 10 + 0.587 * 200 + 0.114 * 30)]]]
    grey = torch.full((2, 1, 4, 4), 7, dtype=torch.uint8)
    assert T.to_channels(grey, 3).shape == (2, 3, 4, 4) and T.to_channels(grey, None) is grey
    with pytest.raises(ResNetError, match="2 channels"):
        T.to_channels(torch.zeros(2, 4, 4, dtype=torch.uint8), 3)
