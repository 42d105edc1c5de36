"""An independent control for the early training of a CIFAR ResNet (issue 13).

A ResNet of depth 6n+2 written from the paper alone (Section 4.2: 3x3 conv 16, three stages of 2n
3x3 layers on 32/16/8 maps with 16/32/64 filters, option A shortcuts, global average pool, fc) and a
plain PyTorch training loop: nothing here imports the ``resnet`` package. It reads the same CIFAR-10
JPEG folder, holds out the same 5,000 validation images (the split method the project records in
``split.json``: ``numpy.random.default_rng(0).permutation(n)[:5000]``), subtracts the per-pixel mean
of the 45k training images on the 0..1 scale, and augments with the paper's pad-4 crop and flip.

Each pieces of the recipe that could explain a slow start can be swapped from the command line, one
at a time: the convolution init (fan-in or fan-out He init), the classifier init, the input
normalisation, zero-init of the last BN of each residual branch, a linear LR warm-up.

    python benchmarks/control_resnet56.py --data-dir /tmp/data/cifar10-jpg/train --steps 500 \
        --out /tmp/i13/control-r56.jsonl

prints one line per window of ``--log-every`` steps (mean loss and training error of that window),
the same quantities as the project's ``metrics.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

# -- data ------------------------------------------------------------------------------------------


def load_folder(root: Path, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """All images of root/<class>/* as uint8 [N, 32, 32, 3], classes and files in sorted order."""
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            return z["x"], z["y"]
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            with Image.open(f) as im:
                xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            ys.append(label)
    x, y = np.stack(xs), np.array(ys, dtype=np.int64)
    if cache is not None:
        np.savez(cache, x=x, y=y)
    return x, y


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Pad 4 with zeros (after normalisation: the mean colour), random 32x32 crop, random flip."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen)
    dy = torch.randint(0, 9, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


# -- the network, from the paper -------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.residual, self.stride, self.extra = residual, stride, cout - cin

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        # Option A: subsample, then zero channels (appended at the end: the paper does not say where).
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(out + self.shortcut(x) if self.residual else out)


class Net(nn.Module):
    def __init__(self, depth: int, residual: bool = True) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(Block(cin, width, 2 if (stage > 0 and i == 0) else 1, residual))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


def initialise(net: Net, conv_mode: str, fc_init: str, zero_init: bool) -> None:
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
    if fc_init == "he":
        nn.init.kaiming_normal_(net.fc.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(net.fc.bias)
    elif fc_init == "zero":
        nn.init.zeros_(net.fc.weight)
        nn.init.zeros_(net.fc.bias)
    if zero_init:
        for m in net.modules():
            if isinstance(m, Block):
                nn.init.zeros_(m.b2.weight)


# -- the loop --------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--depth", type=int, default=56)
    p.add_argument("--plain", action="store_true", help="no shortcuts")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=0, help="linear LR warm-up steps from 0")
    p.add_argument("--conv-init", choices=["fan_in", "fan_out"], default="fan_in")
    p.add_argument("--fc-init", choices=["default", "he", "zero"], default="default")
    p.add_argument("--zero-init", action="store_true", help="zero the last BN gamma of each residual branch")
    p.add_argument("--norm", choices=["pixel-mean", "channel"], default="pixel-mean")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path("/tmp/cifar10-jpg-train.npz"))
    p.add_argument("--out", type=Path, default=None, help="JSON lines, one per window")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x, y = load_folder(args.data_dir, args.cache)
    val = np.random.default_rng(0).permutation(len(x))[:5000]
    train = np.setdiff1d(np.arange(len(x)), val)
    xt = torch.from_numpy(x[train]).permute(0, 3, 1, 2).float() / 255
    yt = torch.from_numpy(y[train])
    if args.norm == "pixel-mean":
        xt -= xt.mean(0, keepdim=True)
    else:
        xt = (xt - xt.mean((0, 2, 3), keepdim=True)) / xt.std((0, 2, 3), keepdim=True)

    torch.manual_seed(args.seed)
    net = Net(args.depth, residual=not args.plain)
    initialise(net, args.conv_init, args.fc_init, args.zero_init)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    out = args.out.open("w") if args.out else None
    order = torch.randperm(len(xt), generator=gen)
    pos, loss_sum, err_sum, count, t0 = 0, 0.0, 0, 0, time.perf_counter()
    net.train()
    for step in range(1, args.steps + 1):
        if pos + args.batch_size > len(order):
            order, pos = torch.randperm(len(xt), generator=gen), 0
        idx = order[pos : pos + args.batch_size]
        pos += args.batch_size
        xb, yb = augment(xt[idx], gen), yt[idx]
        lr = args.lr * min(1.0, step / args.warmup) if args.warmup else args.lr
        for g in opt.param_groups:
            g["lr"] = lr
        logits = net(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach()) * len(yb)
        err_sum += int((logits.argmax(1) != yb).sum())
        count += len(yb)
        if step % args.log_every == 0:
            rec = {
                "step": step,
                "loss": loss_sum / count,
                "train_error": err_sum / count,
                "lr": lr,
                "s": round(time.perf_counter() - t0, 1),
            }
            print(json.dumps(rec), flush=True)
            if out:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            loss_sum, err_sum, count = 0.0, 0, 0
            if not math.isfinite(rec["loss"]):
                break


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
