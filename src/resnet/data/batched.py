"""Crops, flips, cutout and mixing of a whole batch at once: no per-image Python loop, any device.

For every image b the output is ``pad(x[b])[:, dy[b]:dy[b]+H, dx[b]:dx[b]+W]``, mirrored left-right
where ``flip[b]``: exactly :func:`resnet.data.transforms.pad_crop_flip` applied image by image. The
row and column indices of all crops are built with index arithmetic and read in one advanced-indexing
gather, so the cost is one pass over the batch whatever its size.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def random_crop_params(n: int, pad: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Offsets ``dy, dx`` uniform on 0..2*pad and flips with probability 1/2, drawn on the CPU."""
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return offsets[0], offsets[1], flip


def pad_crop_flip_batch(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = 4
) -> torch.Tensor:
    """Zero-pad ``x`` [B, C, H, W] by ``pad``, crop H x W at (dy, dx), mirror where ``flip``."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    rows = dy.to(dev)[:, None] + torch.arange(h, device=dev)  # [B, H]
    cols = torch.arange(w, device=dev).expand(b, w)
    cols = torch.where(flip.to(dev)[:, None], cols.flip(1), cols) + dx.to(dev)[:, None]  # [B, W]
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def cutout_params(n: int, h: int, w: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres ``cy, cx`` of each image's cutout square, uniform over its pixels, drawn on the CPU."""
    return torch.randint(0, h, (n,), generator=generator), torch.randint(0, w, (n,), generator=generator)


def cutout_batch(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` [B, C, H, W] with a ``size`` x ``size`` square around (cy[b], cx[b]) set to 0 in every channel of
    image b, clipped where it runs over the border (Cutout: DeVries & Taylor 2017, "Improved Regularization
    of Convolutional Neural Networks with Cutout"; the square's centre may lie anywhere in the image, so
    that part of it falls outside as often as in their code). On normalised images 0 is the mean pixel,
    which is also what the padding of the crops holds. In place where ``x`` allows it."""
    _, _, h, w = x.shape
    dev = x.device
    top, left = cy.to(dev)[:, None] - size // 2, cx.to(dev)[:, None] - size // 2
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    in_rows = (rows >= top) & (rows < top + size)  # [B, H]
    in_cols = (cols >= left) & (cols < left + size)  # [B, W]
    return x.masked_fill_((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)


def mixup_batch(
    x: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): each image blended with
    image ``partner[b]`` of the same batch, ``lam`` of it and ``1 - lam`` of the other, and its target
    class probabilities ``targets`` [B, classes] the same way."""
    partner = partner.to(x.device)
    return torch.lerp(x[partner], x, lam), torch.lerp(targets[partner], targets, lam)


def cutmix_box(h: int, w: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """CutMix's box (Yun et al. 2019, "CutMix"): ``1 - lam`` of the image's area, its sides in the image's
    proportions, centred on (cy, cx) and clipped at the border, as rows ``y0:y1`` and columns ``x0:x1``."""
    side = math.sqrt(1.0 - lam)
    bh, bw = int(h * side), int(w * side)
    y0, y1 = min(max(cy - bh // 2, 0), h), min(max(cy + bh // 2, 0), h)
    x0, x1 = min(max(cx - bw // 2, 0), w), min(max(cx + bw // 2, 0), w)
    return y0, y1, x0, x1


def cutmix_batch(
    x: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, box: tuple[int, int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix: ``box`` of each image replaced by the same box of image ``partner[b]``, and its target
    class probabilities weighted by the areas (the box clipped at the border counts as it is)."""
    y0, y1, x0, x1 = box
    partner = partner.to(x.device)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[partner, :, y0:y1, x0:x1]
    kept = 1.0 - (y1 - y0) * (x1 - x0) / (x.shape[-2] * x.shape[-1])
    return out, torch.lerp(targets[partner], targets, kept)


def flip_batch(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images of ``x`` [B, C, H, W] where ``flip`` [B] is true."""
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)


class PadCropFlipNormalize:
    """``pad_crop_flip_batch(normalization.apply(images[idx]), dy, dx, flip)``, bit for bit, faster.

    The reference normalises a batch in float32 and then gathers its crops element by element with
    four index tensors. Here the uint8 images are zero-padded once, for the whole split, and every
    batch is one gather from a zero-copy view of all ``(2 pad + 1)^2`` crop windows of every image,
    indexed by image and offsets: a quarter of the bytes and no per-batch copy or padding. The
    normalisation follows on the crops, with its shift and divisor cropped the same way from tables
    built once (zero shift and unit divisor in the padding, so the padding is exactly 0, as in the
    reference, which pads with zeros after normalising). Flips come last, on the flipped images only.
    Costs the padded copy of the split (1.56x its size for 32x32 images with pad 4).
    """

    def __init__(self, images: torch.Tensor, shift: torch.Tensor, divisor: torch.Tensor, pad: int):
        n, c, h, w = images.shape
        span = 2 * pad + 1
        self.span = span
        self.windows = F.pad(images, (pad,) * 4).unfold(2, h, 1).unfold(3, w, 1)  # [N, C, span, span, H, W]

        def crops(t: torch.Tensor, fill: float) -> torch.Tensor:
            padded = F.pad(t.float().to(images.device), (pad,) * 4, value=fill)
            return torch.stack(
                [padded[:, dy : dy + h, dx : dx + w] for dy, dx in itertools.product(range(span), repeat=2)]
            )

        self.shifts = crops(shift, 0.0)  # [span * span, C, H, W]
        self.divisors = crops(divisor, 1.0)

    def __call__(self, idx: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        dev = self.windows.device
        idx, dy, dx, flip = idx.to(dev), dy.to(dev), dx.to(dev), flip.to(dev)
        k = dy * self.span + dx
        out = torch.sub(self.windows[idx, :, dy, dx], self.shifts.index_select(0, k))  # uint8 - float: float32
        out.div_(self.divisors.index_select(0, k))
        flipped = flip.nonzero().squeeze(1)
        return out.index_copy_(0, flipped, out.index_select(0, flipped).flip(3))
