"""Data pipeline throughput on this machine (images/s), printed as Markdown tables.

1. CIFAR-10 training pipeline (pad 4, random 32x32 crop, flip, per-pixel mean) from the small-image
   cache: the batched tensor path against a per-image PIL pipeline of the same transforms, same run.
2. The ImageNet-style training pipeline (scale [256, 480], random 224 crop, flip, PCA lighting,
   per-pixel mean) on Imagenette with 0, 1 and 2 DataLoader workers, per core, with the time of one
   image split into decode / augment (per-image, in the workers) / batch (lighting + normalise).

Usage: python benchmarks/bench_data.py [--data ../shared/data] [--work /tmp/resnet-data]
"""

from __future__ import annotations

import argparse
import os
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from resnet.data import FileSplit, fit_normalization, load_dataset, make_train_loader
from resnet.data import transforms as T
from resnet.data.images import decode_tensor

ROOT = Path(__file__).resolve().parents[1]


def extract(archive: Path, work: Path, folder: str) -> Path:
    out = work / folder
    if not out.is_dir():
        work.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
    return out


def per_image_pil(images: np.ndarray, mean: np.ndarray, rng: np.random.Generator, batch: int) -> None:
    """The classic per-image pipeline: PIL pad + crop + flip, then numpy normalise, one image at a time."""
    for start in range(0, len(images) - batch + 1, batch):
        out = []
        for img in images[start : start + batch]:
            im = ImageOps.expand(Image.fromarray(img), border=4, fill=0)
            top, left = rng.integers(0, 9, 2)
            im = im.crop((left, top, left + 32, top + 32))
            if rng.random() < 0.5:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out.append(torch.from_numpy(((np.asarray(im, dtype=np.float32) - mean) / 255.0).transpose(2, 0, 1)))
        torch.stack(out)


def bench_cifar(data: Path, work: Path) -> None:
    root = extract(data / "cifar10-train-jpg.tar.gz", work, "cifar10-jpg")
    t = time.perf_counter()
    bundle = load_dataset("imagefolder", str(root / "train"), cache_dir=str(work / "cache"))
    load_s = time.perf_counter() - t
    norm = fit_normalization(bundle, "pixel-mean")
    loader = make_train_loader(bundle, 128, augment="cifar", normalization=norm, seed=0)
    next(iter(loader))  # warm up
    t = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    batched = n / (time.perf_counter() - t)

    images = bundle.train.images[:5000].permute(0, 2, 3, 1).numpy()
    mean = norm.mean.permute(1, 2, 0).numpy()
    t = time.perf_counter()
    per_image_pil(images, mean, np.random.default_rng(0), 128)
    pil = (len(images) // 128 * 128) / (time.perf_counter() - t)
    print(
        f"\n## CIFAR-10 training pipeline (pad 4, crop 32, flip, per-pixel mean), batch 128, "
        f"{len(bundle.train)} images from the cache (load: {load_s:.1f} s)\n"
    )
    print("| pipeline | images/s |\n| --- | ---: |")
    print(f"| batched tensor path (one epoch) | {batched:,.0f} |")
    print(f"| per-image PIL (5,000 images) | {pil:,.0f} |")
    print(f"| ratio | {batched / pil:.1f}x |")


def split_times(samples: list[tuple[str, int]], norm) -> tuple[float, float, float]:
    """Mean ms per image of decode, per-image augment and batch work (lighting + normalise)."""
    g = torch.Generator().manual_seed(0)
    dec = aug = 0.0
    views = []
    for path, _ in samples:
        side = T.random_side(g)
        t0 = time.perf_counter()
        x = decode_tensor(path, min_side=side)
        t1 = time.perf_counter()
        views.append(T.scale_augment(x, g, side=side))
        aug += time.perf_counter() - t1
        dec += t1 - t0
    batch = torch.stack(views)
    t0 = time.perf_counter()
    norm.apply(T.lighting(batch.float(), g))
    post = time.perf_counter() - t0
    n = len(samples)
    return 1000 * dec / n, 1000 * aug / n, 1000 * post / n


def bench_imagenette(data: Path, work: Path, batches: int) -> None:
    root = extract(data / "imagenette-224.tar.gz", work, "imagenette-224")
    bundle = load_dataset("imagefolder", str(root), cache_dir=str(work / "cache"))
    rng = np.random.default_rng(0)
    subset = FileSplit([bundle.train.samples[i] for i in rng.choice(len(bundle.train), 512, replace=False)])
    norm = fit_normalization(subset, "pixel-mean", cache_dir=work / "cache")
    print(
        f"\n## ImageNet-style training pipeline on Imagenette ({len(bundle.train)} train JPEGs, stored at "
        f"224x224, so scale augmentation upsamples them), batch 64, {batches} batches; mean image of 512 images\n"
    )
    print("| workers | cores busy | images/s | images/s per core |\n| ---: | ---: | ---: | ---: |")
    for workers in (0, 1, 2):
        loader = make_train_loader(bundle, 64, augment="imagenet", normalization=norm, seed=0, workers=workers)
        it = loader.start(0, 0)
        next(it)  # start the workers
        t = time.perf_counter()
        n = sum(len(next(it)[1]) for _ in range(batches))
        rate = n / (time.perf_counter() - t)
        cores = max(1, workers)
        print(f"| {workers} | {cores} | {rate:,.0f} | {rate / cores:,.0f} |")
    dec, aug, post = split_times(subset.samples[:256], norm)
    total = dec + aug + post
    print("\n| stage (one process, 256 images) | ms per image | share |\n| --- | ---: | ---: |")
    for name, ms in (
        ("decode (Pillow, draft)", dec),
        ("augment: resize to [256, 480], crop 224, flip", aug),
        ("batch: PCA lighting + per-pixel mean", post),
    ):
        print(f"| {name} | {ms:.2f} | {100 * ms / total:.0f}% |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder of the archives")
    p.add_argument("--work", type=Path, default=Path("/tmp/resnet-data"), help="where to extract and cache")
    p.add_argument("--batches", type=int, default=20, help="Imagenette batches timed per worker count")
    args = p.parse_args()
    if not (args.data / "cifar10-train-jpg.tar.gz").is_file():
        raise SystemExit(f"{args.data}: no archives here (see ../shared/data/README.md)")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads")
    bench_cifar(args.data, args.work)
    bench_imagenette(args.data, args.work, args.batches)


if __name__ == "__main__":
    main()
