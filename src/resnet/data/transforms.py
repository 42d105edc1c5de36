"""The paper's augmentation and test transforms on tensors (no torchvision).

Images are uint8 or float tensors ``[C, H, W]`` (or ``[B, C, H, W]`` where all share one size), in
0..255. Randomness always comes from an explicit ``torch.Generator`` so a pipeline is a pure function
of its seed.

- CIFAR (Sec. 4.2): :func:`pad_crop_flip` (4-pixel zero padding, random 32x32 crop, random flip); the
  batched equivalent is :mod:`resnet.data.batched`.
- ImageNet (Sec. 3.4): :func:`scale_augment` (shorter side random in [256, 480], random 224 crop,
  random flip) and :func:`lighting` (AlexNet's PCA colour noise, std 0.1).
- Test: :func:`test_views` follows the network's input size. A network trained on images of one
  small size (``image_size``, e.g. CIFAR's 32x32) is tested at that size: ``single`` is the whole
  image (the paper's CIFAR view), ``center`` the centre crop after resizing the shorter side to the
  size, ``ten-crop`` the 4 corner and centre crops of the image padded by 4 pixels (the translations of
  the CIFAR augmentation) and their mirror images, taken after normalisation (:func:`padded_views`);
  ``multi-scale`` is refused; ``flip`` (beyond the paper) scores the single view and its mirror
  image. A network trained on image files (``image_size`` None) gets the
  ImageNet protocols: :func:`center_view` (resize 256, centre 224; also the ``single`` view),
  :func:`ten_crop`, :func:`multi_scale` (shorter sides 224, 256, 384, 480, 640, fully convolutional).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F

from resnet.errors import ResNetError

SCALES = (224, 256, 384, 480, 640)
PROTOCOLS = ("single", "center", "ten-crop", "multi-scale", "flip")
CIFAR_PAD = 4  # the CIFAR augmentation's zero padding, also the small-image ten-crop's
# AlexNet's PCA of ImageNet RGB pixels on the 0..1 scale (as in fb.resnet.torch's transforms.lua).
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])


INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class ImageNetView:
    """How the ImageNet test views of one network are cut: the shorter side resized to ``resize``, the
    centre (and for ten-crop the corners) ``crop`` x ``crop``, resampled with ``interpolation``.

    The paper's (and this project's runs'): 256, 224, bilinear. Published weights carry their
    publisher's: torchvision's V2 weights are evaluated at 232 (resnet50: 232, 224), timm's at theirs.
    """

    resize: int = 256
    crop: int = 224
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ResNetError(f"test view {name} must be an integer in 1..4096 (got {value!r})")
        if self.crop > self.resize:
            raise ResNetError(f"test view crop {self.crop} is larger than the resized side {self.resize}")
        if self.interpolation not in INTERPOLATIONS:
            raise ResNetError(
                f"test view interpolation must be one of {', '.join(INTERPOLATIONS)} (got {self.interpolation!r})"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> ImageNetView:
        """``d`` as :meth:`to_dict` writes it; None (a checkpoint without one): the paper's view."""
        if d is None:
            return cls()
        if not isinstance(d, dict) or set(d) - {"resize", "crop", "interpolation"}:
            raise ResNetError(f"test view {str(d)[:60]!r} must be an object with resize, crop, interpolation")
        return cls(**d)


PAPER_VIEW = ImageNetView()


def resize(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize (antialiased when shrinking; bilinear or bicubic) to ``size`` = (H, W); keeps the dtype."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    batched = x.dim() == 4
    y = F.interpolate(
        (x if batched else x[None]).float(), size=size, mode=interpolation, align_corners=False, antialias=True
    )
    y = y if batched else y[0]
    return y.round_().clamp_(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else y.to(x.dtype)


def shorter_side_size(h: int, w: int, side: int) -> tuple[int, int]:
    """(H, W) with the shorter side ``side`` and the aspect ratio kept."""
    return (side, max(1, round(w * side / h))) if h <= w else (max(1, round(h * side / w)), side)


def resize_shorter(x: torch.Tensor, side: int, interpolation: str = "bilinear") -> torch.Tensor:
    return resize(x, shorter_side_size(x.shape[-2], x.shape[-1], side), interpolation)


def crop(x: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    return x[..., top : top + h, left : left + w]


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


def scale_augment(
    image: torch.Tensor, generator: torch.Generator, *, side: int | None = None, size: int = 224
) -> torch.Tensor:
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


def center_view(
    x: torch.Tensor, resize_to: int = 256, size: int = 224, interpolation: str = "bilinear"
) -> torch.Tensor:
    """Resize the shorter side to ``resize_to``, take the centre ``size`` x ``size``."""
    return center_crop(resize_shorter(x, resize_to, interpolation), size)


def ten_crop(
    x: torch.Tensor, resize_to: int | None = 256, size: int | tuple[int, int] = 224, interpolation: str = "bilinear"
) -> torch.Tensor:
    """The 4 corner and centre crops and their mirror images: [10, C, size, size] ([B, 10, ...] batched).

    ``resize_to`` None crops ``x`` as it is."""
    y = resize_shorter(x, resize_to, interpolation) if resize_to is not None else x
    h, w = y.shape[-2:]
    ch, cw = (size, size) if isinstance(size, int) else size
    views = [
        crop(y, 0, 0, ch, cw),
        crop(y, 0, w - cw, ch, cw),
        crop(y, h - ch, 0, ch, cw),
        crop(y, h - ch, w - cw, ch, cw),
        center_crop(y, ch, cw),
    ]
    views += [hflip(v) for v in views]
    return torch.stack(views, dim=-4)


def multi_scale(x: torch.Tensor, scales: tuple[int, ...] = SCALES, square: bool = False) -> list[torch.Tensor]:
    """The whole image at each shorter side in ``scales`` (the fully-convolutional protocol).

    ``square`` centre-crops the longer side to the shorter one, so images of different aspect ratios
    can share a batch.
    """
    views = [resize_shorter(x, s) for s in scales]
    return [center_crop(v, min(v.shape[-2:])) for v in views] if square else views


def check_protocol(protocol: str, image_size: tuple[int, int] | None) -> None:
    """Refuse, in one line, a protocol unknown or meaningless for a network of this input size."""
    if protocol not in PROTOCOLS:
        raise ResNetError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if protocol == "multi-scale" and image_size is not None:
        raise ResNetError(
            f"--multi-scale is the paper's ImageNet protocol (shorter sides {SCALES[0]} to "
            f"{SCALES[-1]}); this network was trained on {image_size[0]}x{image_size[1]} images: use "
            "the single view (the default), --center or --ten-crop"
        )


def to_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 ``[..., C, H, W]`` with ``channels`` channels: RGB to grey as Pillow's ``convert("L")``
    (ITU-R 601 luma), grey to RGB by repetition; ``None`` keeps ``x``."""
    have = x.shape[-3]
    if channels is None or have == channels:
        return x
    if (have, channels) == (3, 1):
        luma = torch.tensor([0.299, 0.587, 0.114], device=x.device)[:, None, None]
        return (x.float() * luma).sum(-3, keepdim=True).round().to(x.dtype)
    if (have, channels) == (1, 3):
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:])
    raise ResNetError(f"images with {have} channels cannot be given to a network that takes {channels}")


def native_view(x: torch.Tensor, size: tuple[int, int], crop_to_fit: bool) -> torch.Tensor:
    """The image at the network's size: squashed to ``size`` (the whole image), or with ``crop_to_fit``
    resized to cover ``size`` with its aspect ratio kept and centre-cropped."""
    if not crop_to_fit:
        return resize(x, size)
    h, w = x.shape[-2:]
    scale = max(size[0] / h, size[1] / w)
    return center_crop(resize(x, (max(size[0], round(h * scale)), max(size[1], round(w * scale)))), *size)


def test_views(
    x: torch.Tensor,
    protocol: str,
    *,
    image_size: tuple[int, int] | None = None,
    square: bool = False,
    view: ImageNetView = PAPER_VIEW,
) -> torch.Tensor | list[torch.Tensor]:
    """The views a test protocol scores, before normalisation (see the module docstring).

    ``image_size``: the network's input size if it was trained on images of one small size, None
    for the ImageNet pipeline. Small-image ``ten-crop`` returns the one native view here; its crops
    come after normalisation from :func:`padded_views`. ``square`` (multi-scale) centre-crops the
    longer side so that images of different shapes can share a batch. ``view``: how the ImageNet
    single, centre and ten-crop views are cut (multi-scale is the paper's fixed set of sides).
    """
    check_protocol(protocol, image_size)
    if image_size is not None:
        size = cast("tuple[int, int]", tuple(image_size))  # a tuple() copy is typed without the pair's length
        return native_view(x, size, crop_to_fit=protocol == "center")
    if protocol in ("single", "center", "flip"):
        return center_view(x, view.resize, view.crop, view.interpolation)
    if protocol == "ten-crop":
        return ten_crop(x, view.resize, view.crop, view.interpolation)
    return multi_scale(x, square=square)


def padded_views(
    x: torch.Tensor, protocol: str, image_size: tuple[int, int] | None, pad: int = CIFAR_PAD
) -> torch.Tensor:
    """The views that come after normalisation: for a small-image network's ``ten-crop``, the 4 corner
    and centre crops of ``x`` zero-padded by ``pad`` (zero is the mean pixel after normalisation, as the
    CIFAR augmentation pads) and their mirror images, ``[..., 10, C, H, W]``; for ``flip``, ``x`` and
    its mirror image, ``[..., 2, C, H, W]``; otherwise ``x`` itself."""
    if isinstance(x, list):
        return x
    if protocol == "flip":  # the view and its mirror image, [..., 2, C, H, W]
        return torch.stack([x, hflip(x)], dim=-4)
    if protocol != "ten-crop" or image_size is None:
        return x
    h, w = x.shape[-2:]
    return ten_crop(F.pad(x, (pad, pad, pad, pad)), resize_to=None, size=(h, w))


def decode_side(protocol: str, image_size: tuple[int, int] | None, view: ImageNetView = PAPER_VIEW) -> int | None:
    """The shorter side a JPEG may be decoded at (by Pillow's draft) without losing what the views need."""
    if image_size is not None:
        return max(image_size)
    return None if protocol == "multi-scale" else view.resize
