"""``resnet eval``: top-1 and top-5 error of a checkpoint on its data (or other data), under one of the
paper's test protocols."""

from __future__ import annotations

import argparse
import json
from typing import Any

from resnet.commands._arguments import checkpoint_argument, device_argument, quiet_argument
from resnet.data import Normalization, make_eval_loader
from resnet.data.transforms import ImageNetView, check_protocol
from resnet.device import resolve_device, resolve_speed
from resnet.errors import ResNetError
from resnet.eval_data import data_name, eval_split
from resnet.evaluate import NonFiniteOutputs, evaluate, model_from_checkpoint, top5_text
from resnet.inference import prepare_for_inference
from resnet.option_types import positive_int

DESCRIPTION = (
    "Top-1 and top-5 error of a checkpoint (or a run folder: its best checkpoint) on a "
    "dataset. The data, split and normalisation default to the ones it was trained with. Another "
    "--data-dir is read with its own structure (val/, train/, or every image with --split all), its "
    "class folders matched to the checkpoint's classes by name (a subset is fine). The test views "
    "follow the network's input size: ImageNet crops for networks trained on image files, the "
    "network's own size (e.g. 32x32) for ones trained on small images."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    checkpoint_argument(p)
    p.add_argument(
        "--data",
        default=None,
        help="dataset (default: the one it was trained on; an image folder for a --data-dir of class folders)",
    )
    p.add_argument("--data-dir", default=None, help="dataset folder (default: the one it was trained on)")
    p.add_argument(
        "--split",
        choices=["val", "test", "train", "all"],
        default=None,
        help="which split to evaluate (default: val; every image of a --data-dir of class folders "
        "without train/ or val/, a test set, as a line says; test where the source has one, e.g. CIFAR; "
        "all: every image of the data, e.g. a separate test folder)",
    )
    views = p.add_mutually_exclusive_group()
    views.add_argument(
        "--ten-crop",
        action="store_true",
        help="average 10 crops: 4 corners, centre, and flips "
        "(224 crops of the image resized to 256; for small-image networks, crops at their size of "
        "the image padded by 4 pixels)",
    )
    views.add_argument(
        "--multi-scale",
        action="store_true",
        help="fully convolutional, scores averaged over shorter sides 224, 256, 384, 480, 640 "
        "(ImageNet-style networks only)",
    )
    views.add_argument(
        "--center",
        action="store_true",
        help="resize 256, centre 224 crop (small-image networks: shorter side resized to their size, centre crop)",
    )
    views.add_argument(
        "--flip", action="store_true", help="average the single view and its mirror image (beyond the paper)"
    )
    p.add_argument("--batch-size", type=positive_int, default=100, help="images per forward pass (default: 100)")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="autocast precision of the forward passes (default: the one the run trained and validated "
        "with, recorded in the checkpoint; fp32 for checkpoints that do not record it), so that eval "
        "gives the number training printed",
    )
    device_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    quiet_argument(p)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, meta = model_from_checkpoint(args.checkpoint, device)
    # The test views follow the network's input size (CIFAR nets: 32x32 views, not ImageNet crops).
    image_size = tuple(meta["image_size"]) if meta.get("image_size") else None
    protocol = _protocol(args, meta)
    check_protocol(protocol, image_size)
    name = data_name(meta, args.data, args.data_dir)
    split_name, split = eval_split(
        meta, args.split, data=name, data_dir=args.data_dir, source=args.checkpoint, quiet=args.quiet
    )
    precision, why = _precision(args.precision, meta)
    if precision == "fp32":
        # BN folded into the convolutions, channels-last, float32: the same function as the trained net, faster.
        net: Any = prepare_for_inference(model, device, precision="fp32")
        speed = None
    else:
        # Under autocast as in training's validation (the network as trained, not folded: folding first
        # would round differently in bf16/fp16).
        net, speed = model, resolve_speed(str(device), precision)
    loader = make_eval_loader(
        split,
        args.batch_size,
        protocol=protocol,
        normalization=Normalization.from_dict(meta["normalization"]),
        device=device,
        image_size=image_size,
        in_channels=meta["model_options"].get("in_channels", 3),
        view=ImageNetView.from_dict(meta.get("eval_view")),  # published weights: their publisher's crop
    )
    try:
        result = evaluate(net, loader, speed, quiet=args.quiet)
    except NonFiniteOutputs as e:
        raise ResNetError(f"{args.checkpoint}: {e}") from None
    where = f"{name} {args.data_dir}" if args.data_dir else name
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "model": meta["model"],
                    "data": name,
                    "data_dir": args.data_dir,
                    "split": split_name,
                    "protocol": protocol,
                    "precision": precision,
                    **result.to_dict(),
                }
            )
        )
    else:
        print(
            f"{meta['model']} on {where} {split_name} ({result.images} images, {protocol}, {precision}{why}): "
            f"top-1 error {100 * result.top1_error:.2f}%{top5_text(result.top5_error)}"
        )
    return 0


PRECISIONS = ("fp32", "bf16", "fp16")


def _precision(asked: str | None, meta: dict[str, Any]) -> tuple[str, str]:
    """The precision to evaluate at, and why, for the output line: asked, else the training's."""
    if asked is not None:
        return asked, ""
    if "precision" in meta:
        return str(meta["precision"]), " as trained"
    return "fp32", ""


def _protocol(args: argparse.Namespace, meta: dict[str, Any]) -> str:
    """The test views asked for, else the ones the network was validated with during training."""
    if args.ten_crop:
        return "ten-crop"
    if args.multi_scale:
        return "multi-scale"
    if args.center:
        return "center"
    if args.flip:
        return "flip"
    return meta.get("val_protocol", "single")
