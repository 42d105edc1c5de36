"""The paper's augmentation and test transforms on tensors (no torchvision).

Images are uint8 or float tensors ``[C, H, W]`` (or ``[B, C, H, W]`` where all share one size), in
0..255. Randomness always comes from an explicit ``torch.Generator`` so a pipeline is a pure function
of its seed.

- CIFAR (Sec. 4.2): :func:`pad_crop_flip` (4-pixel zero padding, random 32x32 crop, random flip); the
  batched equivalent is :mod:`resnet.data.batched`.
- ImageNet (Sec. 3.4): :func:`scale_augment` (shorter side random in [256, 480], random 224 crop,
  random flip) and :func:`lighting` (AlexNet's PCA colour noise, std 0.1).
- Test: :func:`center_view` (resize 256, centre 224), :func:`ten_crop`, :func:`multi_scale`
  (shorter sides 224, 256, 384, 480, 640 for the fully-convolutional protocol).
- :func:`load_image`: one image file as a model input, for ``resnet predict``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from resnet.data.images import decode_tensor
from resnet.errors import ResNetError

SCALES = (224, 256, 384, 480, 640)
PROTOCOLS = ("single", "center", "ten-crop", "multi-scale")
# AlexNet's PCA of ImageNet RGB pixels on the 0..1 scale (as in fb.resnet.torch's transforms.lua).
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking) to ``size`` = (H, W); keeps the dtype."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    batched = x.dim() == 4
    y = F.interpolate((x if batched else x[None]).float(), size=size, mode="bilinear",
                      align_corners=False, antialias=True)
    y = y if batched else y[0]
    return y.round_().clamp_(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else y.to(x.dtype)


def shorter_side_size(h: int, w: int, side: int) -> tuple[int, int]:
    """(H, W) with the shorter side ``side`` and the aspect ratio kept."""
    return (side, max(1, round(w * side / h))) if h <= w else (max(1, round(h * side / w)), side)


def resize_shorter(x: torch.Tensor, side: int) -> torch.Tensor:
    return resize(x, shorter_side_size(x.shape[-2], x.shape[-1], side))


def crop(x: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    return x[..., top:top + h, left:left + w]


def center_crop(x: torch.Tensor, h: int, w: int | None = None) -> torch.Tensor:
    w = h if w is None else w
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return crop(x, top, left, h, w)


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def pad_crop_flip(image: torch.Tensor, top: int, left: int, flip: bool, pad: int = 4) -> torch.Tensor:
    """CIFAR augmentation of one image [C, H, W] with given offsets: the per-image reference."""
    h, w = image.shape[-2:]
    out = crop(F.pad(image, (pad, pad, pad, pad)), top, left, h, w)
    return hflip(out) if flip else out


def random_side(generator: torch.Generator, scale: tuple[int, int] = (256, 480)) -> int:
    """The paper's scale augmentation: a shorter side uniform on ``scale`` (inclusive)."""
    return int(torch.randint(scale[0], scale[1] + 1, (), generator=generator))


def scale_augment(image: torch.Tensor, generator: torch.Generator, *, side: int | None = None,
                  size: int = 224) -> torch.Tensor:
    """ImageNet training view: shorter side resized to ``side`` (default :func:`random_side`), a random
    ``size`` x ``size`` crop, a random flip."""
    side = random_side(generator) if side is None else side
    x = resize_shorter(image, side)
    h, w = x.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (), generator=generator))
    left = int(torch.randint(0, w - size + 1, (), generator=generator))
    x = crop(x, top, left, size, size)
    return hflip(x) if bool(torch.rand((), generator=generator) < 0.5) else x


def lighting(x: torch.Tensor, generator: torch.Generator, std: float = 0.1) -> torch.Tensor:
    """AlexNet's PCA colour augmentation of a float batch [B, 3, H, W] on the 0..255 scale.

    Each image gets the RGB offset ``eigvec @ (alpha * eigval)``, alpha ~ N(0, std^2) per component.
    The eigen-decomposition is of 0..1 pixels, so the offset is multiplied by 255 here.
    """
    alpha = torch.randn(x.shape[0], 3, generator=generator) * std
    offset = (alpha * PCA_EIGVAL) @ PCA_EIGVEC.T * 255.0  # [B, 3]
    return x + offset.to(x.device, x.dtype)[:, :, None, None]


def center_view(x: torch.Tensor, resize_to: int = 256, size: int = 224) -> torch.Tensor:
    """Resize the shorter side to ``resize_to``, take the centre ``size`` x ``size``."""
    return center_crop(resize_shorter(x, resize_to), size)


def ten_crop(x: torch.Tensor, resize_to: int = 256, size: int = 224) -> torch.Tensor:
    """The 4 corner and centre crops and their mirror images: [10, C, size, size] ([B, 10, ...] batched)."""
    y = resize_shorter(x, resize_to)
    h, w = y.shape[-2:]
    views = [crop(y, 0, 0, size, size), crop(y, 0, w - size, size, size), crop(y, h - size, 0, size, size),
             crop(y, h - size, w - size, size, size), center_crop(y, size)]
    views += [hflip(v) for v in views]
    return torch.stack(views, dim=-4)


def multi_scale(x: torch.Tensor, scales: tuple[int, ...] = SCALES, square: bool = False) -> list[torch.Tensor]:
    """The whole image at each shorter side in ``scales`` (the fully-convolutional protocol).

    ``square`` centre-crops the longer side to the shorter one, so images of different aspect ratios
    can share a batch.
    """
    views = [resize_shorter(x, s) for s in scales]
    return [center_crop(v, min(v.shape[-2:])) for v in views] if square else views


def test_views(x: torch.Tensor, protocol: str, *, square: bool = False) -> torch.Tensor | list[torch.Tensor]:
    """The views a test protocol scores: ``single`` the image as it is, ``center`` :func:`center_view`,
    ``ten-crop`` :func:`ten_crop`, ``multi-scale`` :func:`multi_scale` (a list, one view per scale)."""
    if protocol == "single":
        return x
    if protocol == "center":
        return center_view(x)
    if protocol == "ten-crop":
        return ten_crop(x)
    if protocol == "multi-scale":
        return multi_scale(x, square=square)
    raise ResNetError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def load_image(path: str | Path, normalization, *, protocol: str = "single",
               image_size: tuple[int, int] | None = None, in_channels: int = 3) -> torch.Tensor | list[torch.Tensor]:
    """One image file as the model's input: ``[1, C, H, W]``, ``[1, 10, C, H, W]`` (ten-crop) or a
    list of ``[1, C, H, W]`` (multi-scale), normalised by ``normalization``.

    ``single`` resizes the whole image to ``image_size`` (the training size of a "tensor" dataset,
    e.g. 32x32) when given; ``in_channels=1`` converts to grey as the digits are.
    """
    from resnet.data.normalization import Normalization

    assert isinstance(normalization, Normalization)
    x = decode_tensor(path, min_side=None if protocol == "multi-scale" else 256)
    if in_channels == 1:
        # ITU-R 601 luma, as Pillow's convert("L")
        x = (x.float() * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True).round().to(torch.uint8)
    if protocol == "single" and image_size is not None:
        x = resize(x, image_size)
    views = test_views(x, protocol)
    if isinstance(views, list):
        return [normalization.apply(v[None]) for v in views]
    return normalization.apply(views[None])
