"""``resnet predict``: the top classes of image files (or of every image in folders), with their names and
probabilities, from a checkpoint or published weights."""

from __future__ import annotations

import argparse
import json

from resnet.atomic_files import atomic_write
from resnet.commands._arguments import (
    checkpoint_argument,
    device_argument,
    normalization_argument,
    normalization_needs_weights,
    weights_argument,
)
from resnet.device import resolve_device
from resnet.evaluate import model_from_checkpoint
from resnet.inference import prepare_for_inference
from resnet.option_types import positive_int
from resnet.predict import csv_text, image_paths, iter_predictions

DESCRIPTION = (
    "Classify image files with a checkpoint (or a run folder): the top classes with "
    "their names and probabilities. A folder stands for every image in it and its subfolders."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    checkpoint_argument(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images (searched recursively)")
    p.add_argument("--top", type=positive_int, default=5, help="classes to show per image (default: 5)")
    weights_argument(p, "CHECKPOINT")
    normalization_argument(p)
    p.add_argument(
        "--csv",
        metavar="FILE",
        default=None,
        help="also write one row per image: image, class_1, probability_1, ..., class_k, probability_k",
    )
    device_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON: one object per image")


def run(args: argparse.Namespace) -> int:
    normalization_needs_weights(args)
    paths = image_paths(args.images)  # before loading the network: a wrong folder fails at once
    device = resolve_device(args.device)
    if args.weights:  # CHECKPOINT is a model name
        from resnet.weights import model_from_weights

        model, meta = model_from_weights(args.checkpoint, args.weights, normalization=args.normalization)
        model = model.to(device)
    else:
        model, meta = model_from_checkpoint(args.checkpoint, device)
    net = prepare_for_inference(model, device, precision="fp32")
    results = []
    for r in iter_predictions(net, meta, paths, args.top, device):
        results.append(r)
        if args.json:
            print(json.dumps(r), flush=True)
            continue
        print(r["image"])
        for rank, t in enumerate(r["top"], 1):
            print(f"  {rank}. {t['class']:<24} {100 * t['probability']:6.2f}%", flush=rank == len(r["top"]))
    if args.csv:
        atomic_write(args.csv, csv_text(results).encode())
    return 0
