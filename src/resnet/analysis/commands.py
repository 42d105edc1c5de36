"""``resnet analyze responses|gradients``: gather the data, measure, write figure, table and JSON."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from resnet.errors import ResNetError
from resnet.markdown import markdown_table
from resnet.progress import progress

logger = logging.getLogger(__name__)


def _limited(batches: Iterable, images: int) -> Iterator[torch.Tensor]:
    """The first ``images`` images of an evaluation loader, as image batches."""
    seen = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if seen >= images:
            return
        x = x[: images - seen]
        seen += len(x)
        yield x


def _out_dir(path: str) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResNetError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    return out


def run_responses_command(args: argparse.Namespace) -> int:
    """Figure 7 for trained runs: std of every 3x3 layer's response on validation images."""
    from resnet.analysis.responses import layer_responses
    from resnet.data import Normalization, make_eval_loader
    from resnet.eval_data import checkpoint_split
    from resnet.evaluate import model_from_checkpoint
    from resnet.plots import plot_responses
    from resnet.device import resolve_device

    device = resolve_device(args.device)
    out = _out_dir(args.out)
    results = {}
    for source in args.sources:
        model, meta = model_from_checkpoint(source, device)
        split = checkpoint_split(meta, args.split, data=args.data, data_dir=args.data_dir, source=source,
                                 quiet=args.quiet)
        loader = make_eval_loader(split, args.batch_size, protocol="single",
                                  normalization=Normalization.from_dict(meta["normalization"]), device=device)
        label = Path(source).name if Path(source).is_dir() else meta["model"]
        batches = min(len(loader), math.ceil(args.images / args.batch_size))
        results[label] = layer_responses(model, progress(_limited(loader, args.images), total=batches,
                                                         desc=f"{label}: responses", quiet=args.quiet, unit="batch"))
        logger.info("%s: %d layers measured on %d images", label, len(results[label]), args.images)
    figure = plot_responses(results, out / "responses.png")
    rows = [["network", "3x3 layers", "mean std", "median std", "max std"]]
    for label, layers in results.items():
        stds = sorted(r.std for r in layers)
        rows.append([label, str(len(stds)), f"{sum(stds) / len(stds):.4f}", f"{stds[len(stds) // 2]:.4f}",
                     f"{stds[-1]:.4f}"])
    (out / "responses.json").write_text(json.dumps(
        {label: [vars(r) for r in layers] for label, layers in results.items()}, indent=1) + "\n")
    (out / "responses.md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    print(f"figure: {figure}")
    return 0


def run_gradients_command(args: argparse.Namespace) -> int:
    """Per-layer gradient norms, at initialisation and after --steps SGD steps, for each model given."""
    from resnet.models import build_model
    from resnet.analysis.gradients import gradient_flow
    from resnet.data import fit_normalization, load_dataset, make_eval_loader, make_train_loader
    from resnet.plots import plot_gradient_flow
    from resnet.device import resolve_device

    device = resolve_device(args.device)
    out = _out_dir(args.out)
    bundle = load_dataset(args.data, args.data_dir, val_split=args.val_split, split_seed=0, quiet=args.quiet)
    normalization = fit_normalization(bundle, "pixel-mean", quiet=args.quiet)
    if bundle.val is None:
        raise ResNetError(f"--data {args.data}: a validation split is needed for the measurement batch")
    # One fixed batch of validation images for every measurement, so models are compared on equal terms.
    measure = next(iter(make_eval_loader(bundle.val, args.batch_size, protocol="single",
                                         normalization=normalization, device=device)))
    augment = "cifar" if args.data in ("cifar10", "cifar100") else "none"
    profiles = []
    for name in args.models:
        torch.manual_seed(args.seed)
        model = build_model(name, num_classes=bundle.num_classes, in_channels=bundle.in_channels).to(device)
        loader = make_train_loader(bundle, args.batch_size, augment=augment, normalization=normalization,
                                   device=device, seed=args.seed)
        batches = itertools.chain.from_iterable(_epochs(loader))
        profiles += gradient_flow(model, (measure[0], measure[1]), batches, args.steps, name=name, lr=args.lr,
                                  quiet=args.quiet)
    figure = plot_gradient_flow(profiles, out / "gradients.png")
    rows = [["network", "step", "loss", "first layer", "middle layer", "last conv", "first/last", "min", "max"]]
    for p in profiles:
        rows.append([p.model, str(p.step), f"{p.loss:.3f}", f"{p.norms[0]:.3g}", f"{p.norms[len(p.norms) // 2]:.3g}",
                     f"{p.norms[-1]:.3g}", f"{p.first_to_last:.3g}", f"{min(p.norms):.3g}", f"{max(p.norms):.3g}"])
    (out / "gradients.json").write_text(json.dumps([vars(p) for p in profiles], indent=1) + "\n")
    (out / "gradients.md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    print(f"figure: {figure}")
    return 0


def _epochs(loader) -> Iterator[Iterable]:
    """The train loader epoch after epoch (each a fresh, seeded order)."""
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        yield loader
