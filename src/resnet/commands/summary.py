"""``resnet summary``: one network's stages, blocks, parameters and multiply-adds, the paper's Table 1, or
a table of every network."""

from __future__ import annotations

import argparse
import json
from typing import Any

from resnet.analysis.complexity import (
    all_models_table,
    feature_summary,
    format_feature_table,
    format_table,
    model_summary,
    summarize,
    table1,
)
from resnet.commands._arguments import weights_argument
from resnet.errors import ResNetError
from resnet.models import get_spec
from resnet.option_types import channels_int, classes_int, depth_int, image_side

DESCRIPTION = (
    "Print the paper's Table 1 view of a network: each stage's output size, its "
    "blocks, parameters and multiply-adds (convolutions and fully connected layers)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", nargs="?", help="network name (see `resnet summary --all`), e.g. resnet50, resnet56, plain20"
    )
    p.add_argument(
        "--input-size",
        type=image_side,
        nargs="+",
        metavar="N",
        default=None,
        help="input height [width] in pixels (default: 224 for ImageNet nets, 32 for CIFAR nets)",
    )
    p.add_argument("--num-classes", type=classes_int, default=None, help="classifier outputs (default: the family's)")
    p.add_argument("--shortcut", choices=["A", "B", "C"], default=None, help="shortcut option (default: the family's)")
    p.add_argument(
        "--stride-on",
        choices=["1x1", "3x3"],
        default=None,
        help="where a downsampling bottleneck puts its stride (default: 1x1, the paper's)",
    )
    p.add_argument(
        "--depth", type=depth_int, default=None, help="depth, for the generic builders cifar_resnet/cifar_plain (6n+2)"
    )
    p.add_argument("--in-channels", type=channels_int, default=None, help="input channels (default: 3)")
    weights_argument(p)
    p.add_argument(
        "--output-stride",
        type=int,
        choices=[32, 16, 8],
        default=None,
        help="dilate the last stage (16) or two (8) instead of striding, as DeepLab does (ImageNet nets)",
    )
    p.add_argument(
        "--features",
        action="store_true",
        help="the feature maps a detector or segmenter takes: stage, channels, stride, output size",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--table1", action="store_true", help="the paper's Table 1 for the whole ImageNet family")
    p.add_argument("--all", action="store_true", help="a Markdown table of every network: parameters and multiply-adds")


def run(args: argparse.Namespace) -> int:
    if args.table1:
        print(table1())
        return 0
    if args.all:
        print(all_models_table())
        return 0
    if not args.model:
        raise ResNetError("summary needs a model name (or --table1 / --all); see `resnet summary --help`")
    size = _input_size(args)
    options = _model_options(args)
    if args.features:
        if args.weights:
            raise ResNetError("--features lists the feature maps of the architecture; leave --weights out")
        features = feature_summary(args.model, size, **options)
        print(json.dumps(features) if args.json else format_feature_table(features))
        return 0
    if args.weights:  # the network the weights need (e.g. stride on the 3x3), built for real and loaded
        from resnet.weights import pretrained_model

        model, info, built = pretrained_model(args.model, args.weights, **options)  # no normalisation needed
        summary = summarize(
            model,
            size or (get_spec(args.model).input_size,) * 2,
            name=info.name,
            in_channels=int(built.get("in_channels", 3)),
        )
    else:
        summary = model_summary(args.model, size, **options)
    print(json.dumps(summary.to_dict()) if args.json else format_table(summary))
    return 0


def _input_size(args: argparse.Namespace) -> tuple[int, int] | None:
    if not args.input_size:
        return None
    if len(args.input_size) > 2 or min(args.input_size) < 1:
        raise ResNetError("--input-size takes one or two positive integers: H [W]")
    return args.input_size[0], args.input_size[-1]


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The architecture options given (the others stay the family's)."""
    return {
        k: v
        for k, v in (
            ("num_classes", args.num_classes),
            ("shortcut", args.shortcut),
            ("stride_on", args.stride_on),
            ("depth", args.depth),
            ("in_channels", args.in_channels),
            ("output_stride", args.output_stride),
        )
        if v is not None
    }
