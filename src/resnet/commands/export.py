"""``resnet export CHECKPOINT --format onnx|torchscript|hf``: write a trained network (or published weights) as
TorchScript or ONNX, checked against eager PyTorch, or as a Hugging Face Hub folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from resnet.commands._arguments import (
    checkpoint_argument,
    normalization_argument,
    normalization_needs_weights,
    weights_argument,
)
from resnet.errors import ResNetError
from resnet.evaluate import model_from_checkpoint
from resnet.export import SUFFIXES, deployment_metadata, export_model, input_shape_from_meta
from resnet.hub_export import write_hub_folder
from resnet.option_types import image_side
from resnet.weights.shipped import find_shipped

DESCRIPTION = (
    "Write a trained network (BatchNorm folded into the convolutions, any batch size) as "
    "TorchScript or ONNX. The export is compared with eager PyTorch on random inputs and removed "
    "again if they differ beyond float tolerance. ONNX needs `pip install 'deep-residual-learning[export]'` "
    "(from a source checkout: `pip install -e '.[export]'`). `--format hf` writes a Hugging Face Hub folder "
    "(config.json, model.safetensors, README.md) that loads back with create_model('hf-hub:OWNER/REPO')."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    checkpoint_argument(p)
    p.add_argument("--format", choices=["torchscript", "onnx", "hf"], required=True, help="what to write")
    p.add_argument(
        "--output",
        default=None,
        help="file to write (default: beside the checkpoint, .pt for TorchScript, .onnx for ONNX, a folder "
        "NAME-hf for hf; with --weights: MODEL.WEIGHTS.pt/.onnx/-hf here)",
    )
    p.add_argument(
        "--input-size",
        type=image_side,
        nargs="+",
        metavar="N",
        default=None,
        help="input height [width] used for the check (default: the checkpoint's image size)",
    )
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers separate in the export")
    weights_argument(p, "CHECKPOINT")
    normalization_argument(p)


def run(args: argparse.Namespace) -> int:
    normalization_needs_weights(args)
    output = args.output
    suffix = "-hf" if args.format == "hf" else SUFFIXES[args.format]
    if args.weights:  # CHECKPOINT is a model name; default output: ./resnet50.torchvision.onnx
        from resnet.weights import model_from_weights

        model, meta = model_from_weights(args.checkpoint, args.weights, normalization=args.normalization)
        output = output or f"{meta['weights']}{suffix}"
    else:
        model, meta = model_from_checkpoint(args.checkpoint)
    shipped = find_shipped(args.checkpoint)
    if output is None and shipped is not None:  # a shipped network: ./resnet20.cifar10.onnx, not into the package
        output = f"{shipped.name}{suffix}"
    if output is None:  # beside the checkpoint: run/best.safetensors -> run/best.onnx, run/ -> run/model.onnx
        source = Path(args.checkpoint)
        output = source / f"model{suffix}" if source.is_dir() else source.with_name(source.stem + suffix)
    if args.format == "hf":
        folder = write_hub_folder(meta, model.state_dict(), output)
        print(f"hf: {folder} (config.json, model.safetensors, README.md; upload it as a Hub repository)")
        return 0
    shape = input_shape_from_meta(meta, meta["model"])
    if args.input_size:
        if len(args.input_size) > 2:
            raise ResNetError(f"--input-size takes a height and at most a width, got {len(args.input_size)} numbers")
        h, w = (args.input_size * 2)[:2]
        shape = (shape[0], h, w)
    result = export_model(
        model, output, args.format, shape, fold_bn=not args.no_fold_bn, metadata=deployment_metadata(meta, shape)
    )
    print(
        f"{result.format}: {result.path} (checked against eager PyTorch: max |diff| {result.max_abs_diff:.2e}, "
        f"input {shape[0]}x{shape[1]}x{shape[2]}, any batch size)"
    )
    return 0
