"""``resnet analyze responses|gradients``: measure what the paper argues (layer responses of trained
networks, gradient flow of plain and residual ones); print a table, write figure, table and JSON."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import torch

from resnet.analysis.batches import endless, first_images
from resnet.analysis.gradients import gradient_flow
from resnet.analysis.responses import layer_responses
from resnet.commands._arguments import data_arguments, device_argument, quiet_argument
from resnet.data import Normalization, fit_normalization, load_dataset, make_eval_loader, make_train_loader
from resnet.device import resolve_device
from resnet.errors import ResNetError
from resnet.eval_data import checkpoint_split
from resnet.evaluate import model_from_checkpoint
from resnet.markdown import markdown_table
from resnet.models import build_model
from resnet.option_types import float_range, int_range, positive_int, seed_int, val_split_value
from resnet.plots import plot_gradient_flow, plot_responses
from resnet.progress import progress

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Measure what the paper argues: layer responses of trained networks, and "
    "per-layer gradient norms of plain and residual networks."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    kinds = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    r = kinds.add_parser(
        "responses",
        help="std of each 3x3 layer's output (after BN, before ReLU/addition)",
        description="The paper's Figure 7 for trained runs or checkpoints, on their validation "
        "images: in layer order and sorted by magnitude.",
    )
    r.add_argument("sources", nargs="+", metavar="RUN_OR_CHECKPOINT", help="run folders or checkpoint files")
    r.add_argument("--data", default=None, help="dataset (default: the one each run was trained on)")
    r.add_argument("--data-dir", default=None, help="dataset folder (default: the run's)")
    r.add_argument("--split", choices=["val", "test", "train"], default="val", help="images to use (default: val)")
    r.add_argument("--images", type=positive_int, default=1000, help="how many images (default: 1000)")
    r.add_argument("--batch-size", type=positive_int, default=200, help="images per forward pass (default: 200)")
    device_argument(r)
    r.add_argument("--out", default="analysis", help="output folder (default: analysis)")
    quiet_argument(r)
    g = kinds.add_parser(
        "gradients",
        help="per-layer gradient norms at initialisation and after k steps",
        description="Gradient norm of each convolution weight, input to output, for each "
        "network, on one fixed validation batch: at initialisation and after --steps SGD steps.",
    )
    g.add_argument("models", nargs="+", metavar="MODEL", help="network names, e.g. plain20 resnet20 plain56 resnet56")
    data_arguments(g, default="digits")
    g.add_argument("--val-split", type=val_split_value, default=0.2, help="held-out fraction or count (default: 0.2)")
    g.add_argument(
        "--steps", type=int_range(0), default=50, help="SGD steps before the second measurement (default: 50)"
    )
    g.add_argument("--batch-size", type=positive_int, default=128, help="batch size (default: 128)")
    g.add_argument("--lr", type=float_range(0.0), default=0.1, help="SGD learning rate of the steps (default: 0.1)")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of initialisation and data order (default: 0)")
    g.add_argument("--out", default="analysis", help="output folder (default: analysis)")
    quiet_argument(g)


def run(args: argparse.Namespace) -> int:
    return _responses(args) if args.analysis == "responses" else _gradients(args)


def _responses(args: argparse.Namespace) -> int:
    """Figure 7 for trained runs: std of every 3x3 layer's response on validation images."""
    device = resolve_device(args.device)
    out = _out_dir(args.out)
    results = {}
    for source in args.sources:
        model, meta = model_from_checkpoint(source, device)
        split = checkpoint_split(
            meta, args.split, data=args.data, data_dir=args.data_dir, source=source, quiet=args.quiet
        )
        loader = make_eval_loader(
            split,
            args.batch_size,
            protocol="single",
            normalization=Normalization.from_dict(meta["normalization"]),
            device=device,
        )
        label = Path(source).name if Path(source).is_dir() else meta["model"]
        batches = min(len(loader), math.ceil(args.images / args.batch_size))
        results[label] = layer_responses(
            model,
            progress(
                first_images(loader, args.images),
                total=batches,
                desc=f"{label}: responses",
                quiet=args.quiet,
                unit="batch",
            ),
        )
        logger.info("%s: %d layers measured on %d images", label, len(results[label]), args.images)
    figure = plot_responses(results, out / "responses.png")
    rows = [["network", "3x3 layers", "mean std", "median std", "max std"]]
    for label, layers in results.items():
        stds = sorted(r.std for r in layers)
        rows.append(
            [label, str(len(stds)), f"{sum(stds) / len(stds):.4f}", f"{stds[len(stds) // 2]:.4f}", f"{stds[-1]:.4f}"]
        )
    (out / "responses.json").write_text(
        json.dumps({label: [vars(r) for r in layers] for label, layers in results.items()}, indent=1) + "\n"
    )
    (out / "responses.md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    print(f"figure: {figure}")
    return 0


def _gradients(args: argparse.Namespace) -> int:
    """Per-layer gradient norms, at initialisation and after --steps SGD steps, for each model given."""
    device = resolve_device(args.device)
    out = _out_dir(args.out)
    bundle = load_dataset(args.data, args.data_dir, val_split=args.val_split, split_seed=0, quiet=args.quiet)
    normalization = fit_normalization(bundle, "pixel-mean", quiet=args.quiet)
    if bundle.val is None:
        raise ResNetError(f"--data {args.data}: a validation split is needed for the measurement batch")
    # One fixed batch of validation images for every measurement, so models are compared on equal terms.
    measure = next(
        iter(
            make_eval_loader(bundle.val, args.batch_size, protocol="single", normalization=normalization, device=device)
        )
    )
    augment = "cifar" if args.data in ("cifar10", "cifar100") else "none"
    profiles = []
    for name in args.models:
        torch.manual_seed(args.seed)
        model = build_model(name, num_classes=bundle.num_classes, in_channels=bundle.in_channels).to(device)
        loader = make_train_loader(
            bundle, args.batch_size, augment=augment, normalization=normalization, device=device, seed=args.seed
        )
        profiles += gradient_flow(
            model, (measure[0], measure[1]), endless(loader), args.steps, name=name, lr=args.lr, quiet=args.quiet
        )
    figure = plot_gradient_flow(profiles, out / "gradients.png")
    rows = [["network", "step", "loss", "first layer", "middle layer", "last conv", "first/last", "min", "max"]]
    for p in profiles:
        rows.append(
            [
                p.model,
                str(p.step),
                f"{p.loss:.3f}",
                f"{p.norms[0]:.3g}",
                f"{p.norms[len(p.norms) // 2]:.3g}",
                f"{p.norms[-1]:.3g}",
                f"{p.first_to_last:.3g}",
                f"{min(p.norms):.3g}",
                f"{max(p.norms):.3g}",
            ]
        )
    (out / "gradients.json").write_text(json.dumps([vars(p) for p in profiles], indent=1) + "\n")
    (out / "gradients.md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    print(f"figure: {figure}")
    return 0


def _out_dir(path: str) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResNetError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    return out
