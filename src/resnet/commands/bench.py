"""``resnet bench``: training and inference images/s of this project's fast path against an eager baseline
(and torchvision, ONNX Runtime where installed), measured side by side on this machine."""

from __future__ import annotations

import argparse
import json

from resnet.bench import MODELS, format_table, run_bench, settings_from_args
from resnet.option_types import int_range, positive_int

DESCRIPTION = (
    "Measure training and inference images/s of resnet20 (32x32) and resnet50 (224x224) on "
    "this machine: the fast path against the same network in plain eager fp32 NCHW (and torchvision's "
    "resnet50 with AMP, ONNX Runtime, where installed), interleaved in one run, medians after warm-up."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: auto = cuda if available)")
    p.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        metavar="NAME",
        help=f"networks to measure (default: {' '.join(MODELS)})",
    )
    p.add_argument(
        "--compile",
        choices=["auto", "on", "off"],
        default="auto",
        help="torch.compile the fast path (auto: on, off with --quick)",
    )
    p.add_argument(
        "--compile-mode",
        choices=["default", "reduce-overhead", "max-autotune"],
        default=None,
        help="torch.compile mode; reduce-overhead captures CUDA graphs (small networks on GPU)",
    )
    p.add_argument(
        "--train-batch", type=positive_int, default=None, help="training batch (default: per device and network)"
    )
    p.add_argument(
        "--infer-batch", type=positive_int, default=None, help="inference batch (default: per device and network)"
    )
    p.add_argument("--warmup", type=int_range(0), default=3, help="untimed steps per implementation (default: 3)")
    p.add_argument(
        "--rounds", type=positive_int, default=7, help="interleaved timed rounds; the median counts (default: 7)"
    )
    p.add_argument("--iters", type=positive_int, default=3, help="steps per round (default: 3)")
    p.add_argument(
        "--isolate",
        choices=["on", "off"],
        default="on",
        help="measure each (network, task) group in a fresh process, so that earlier groups cannot "
        "change later rows (default: on)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny batches and counts, no compile: checks that everything runs, times mean nothing",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args: argparse.Namespace) -> int:
    result = run_bench(settings_from_args(args))
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0
