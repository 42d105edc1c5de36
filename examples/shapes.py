"""A small detection and segmentation set the examples make themselves: coloured shapes on noisy backgrounds.

Every image is ``size`` x ``size`` RGB with one to three shapes (class 1: square, class 2: disk) of a
random colour and size on a smooth random background with pixel noise. Boxes and masks are exact,
since the shapes are drawn from them; the same ``seed`` gives the same images.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterable

import torch

CLASSES = ("background", "square", "disk")


def _background(size: int, g: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(3, 4, 4, generator=g)
    smooth = torch.nn.functional.interpolate(coarse[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return (0.6 * smooth + 0.1 * torch.rand(3, size, size, generator=g)).clamp(0, 1)


def make_image(size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image [3, H, W] in 0..1, boxes [N, 4] x1 y1 x2 y2, labels [N], mask [H, W] of class ids)."""
    image = _background(size, g)
    mask = torch.zeros(size, size, dtype=torch.long)
    boxes, labels = [], []
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
        side = int(torch.randint(size // 6, size // 3, (1,), generator=g))
        x0, y0 = (int(v) for v in torch.randint(0, size - side, (2,), generator=g))
        label = int(torch.randint(1, 3, (1,), generator=g))
        if label == 1:
            inside = (xs >= x0) & (xs < x0 + side) & (ys >= y0) & (ys < y0 + side)
        else:
            r = side / 2
            inside = (xs + 0.5 - x0 - r) ** 2 + (ys + 0.5 - y0 - r) ** 2 <= r * r
        colour = 0.3 + 0.7 * torch.rand(3, 1, generator=g)
        image[:, inside] = colour
        mask[inside] = label
        boxes.append([x0, y0, x0 + side, y0 + side])
        labels.append(label)
    return image, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), mask


def make_set(count: int, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [make_image(size, g) for _ in range(count)]


def example_arguments(description: str) -> argparse.Namespace:
    """The options both examples take."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--init", default=None, help="weights for the body, e.g. torchvision (default: none)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--train-images", type=int, default=800)
    parser.add_argument("--test-images", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def train(
    params: Iterable[torch.nn.Parameter], loss_of: Callable[[list[int]], torch.Tensor], args: argparse.Namespace
) -> tuple[float, float]:
    """SGD with momentum, a linear warm-up and cosine decay to zero over ``args.steps``; each step's batch is
    the next ``batch_size`` images of a seeded order. Prints the mean loss every 25 steps; returns the
    first and the last of those means."""
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    warmup = max(1, min(50, args.steps // 5))
    order = torch.randperm(args.train_images, generator=torch.Generator().manual_seed(args.seed)).tolist()
    start, means, window = time.perf_counter(), [], []
    for step in range(args.steps):
        t = step / max(args.steps - 1, 1)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * t))
        picks = [order[(step * args.batch_size + i) % len(order)] for i in range(args.batch_size)]
        loss = loss_of(picks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        window.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step + 1 == args.steps:
            means.append(sum(window) / len(window))
            print(
                f"step {step + 1}/{args.steps}: loss {means[-1]:.3f} ({time.perf_counter() - start:.0f} s)", flush=True
            )
            window = []
    return means[0], means[-1]
