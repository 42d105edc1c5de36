"""``resnet experiment degradation|shortcuts``: train the runs of one of the paper's experiments (again:
continue them) and print its tables; figures and a report go to the output folder."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from resnet import experiments
from resnet.commands._arguments import data_arguments
from resnet.errors import ResNetError
from resnet.markdown import markdown_table
from resnet.option_types import duration_seconds, positive_int, seed_int
from resnet.train.trainer import Interrupted

DESCRIPTION = (
    "Train the runs of one of the paper's experiments (resumable: run the same "
    "command again to continue) and write its figures, tables and report into --out."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    kinds = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, help_text in (
        ("degradation", "plain vs residual CIFAR nets at several depths: Figure 6, Table 6"),
        ("shortcuts", "shortcut options A, B, C on one network (the idea of Table 3)"),
    ):
        e = kinds.add_parser(name, help=help_text, description=help_text)
        data_arguments(e)
        if name == "degradation":
            e.add_argument(
                "--depths",
                default=None,
                help="comma-separated depths 6n+2 (default: 20,56; with "
                "--medium 20,32,44,56; the paper: 20,32,44,56,110)",
            )
            e.add_argument(
                "--nets",
                default="plain,resnet",
                help="which half of Figure 6 to train: plain, "
                "resnet or plain,resnet (default), e.g. --nets resnet to repeat the residual half "
                "with another --seed at half the cost",
            )
            modes = e.add_mutually_exclusive_group()
            modes.add_argument(
                "--quick",
                action="store_true",
                help="short schedule for a laptop CPU: 640 "
                "iterations on 2,500 training images, depths 20 and 56 (see docs/experiments.md)",
            )
            modes.add_argument(
                "--medium",
                action="store_true",
                help="the quick schedule at depths 20, 32, 44 and 56: about twice the time",
            )
        else:
            e.add_argument("--model", default="resnet20", help="residual network (default: resnet20)")
            e.add_argument("--options", default="A,B,C", help="shortcut options to compare (default: A,B,C)")
            e.add_argument(
                "--quick", action="store_true", help="500 iterations: a pipeline check (see docs/experiments.md)"
            )
        e.add_argument(
            "--iterations", type=positive_int, default=None, help="training length of every run (milestones scale)"
        )
        e.add_argument(
            "--time-limit",
            type=duration_seconds,
            default=None,
            metavar="DURATION",
            help="end the whole experiment within this time (e.g. 60m): each run gets a share in "
            "proportion to its cost and plans its length in it (see docs/training.md#a-time-limit)",
        )
        e.add_argument("--seed", type=seed_int, default=0, help="seed of every run (default: 0)")
        e.add_argument("--out", default=None, help=f"output folder (default: experiments/{name})")
        e.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="OPTION=VALUE",
            help="any `resnet train` option for every run, e.g. --set batch_size=64 (repeatable)",
        )
        e.add_argument("--quiet", action="store_true", help="no progress bars")
        e.add_argument(
            "--jobs",
            type=positive_int,
            default=1,
            help="CPU runs trained side by side, each with "
            "its share of the threads (default: 1; see docs/experiments.md for when it pays)",
        )


def run(args: argparse.Namespace) -> int:
    data = {"data": args.data, "device": args.device, "seed": args.seed, "quiet": args.quiet}
    if args.data_dir:
        data["data_dir"] = args.data_dir
    overrides = _parse_sets(args.set)
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    out = args.out or f"experiments/{args.experiment}"
    try:
        if args.experiment == "degradation":
            result = _degradation(args, data, out, overrides)
        else:
            options = [o.strip().upper() for o in args.options.split(",") if o.strip()]
            result = experiments.shortcuts(
                args.model,
                options,
                data,
                out,
                quick=args.quick,
                overrides=overrides,
                parallel=args.jobs,
                time_limit=args.time_limit,
            )
    except Interrupted as e:  # Ctrl-C or SIGTERM: the run in progress saved its checkpoint
        print(f"resnet: {e}; to continue the experiment, run the same command again", file=sys.stderr)
        return 130
    print(markdown_table(result.table))
    if result.checks:
        print()
        print(markdown_table(result.checks))
    print(f"report: {result.report}")
    if result.figure is not None:
        print(f"figure: {result.figure}")
    return 0


def _degradation(
    args: argparse.Namespace, data: dict[str, Any], out: str, overrides: dict[str, Any]
) -> experiments.ExperimentResult:
    mode = "quick" if args.quick else "medium" if args.medium else None
    try:
        depths = (
            [int(d) for d in args.depths.split(",") if d.strip()]
            if args.depths is not None
            else experiments.MODE_DEPTHS[mode]
        )
    except ValueError:
        raise ResNetError(f"--depths {args.depths!r}: expected comma-separated integers, e.g. 20,32,44,56") from None
    kinds = tuple(dict.fromkeys(k.strip().lower() for k in args.nets.split(",") if k.strip()))
    return experiments.degradation(
        depths, data, out, mode=mode, overrides=overrides, parallel=args.jobs, kinds=kinds, time_limit=args.time_limit
    )


def _parse_sets(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values stay strings and are typed by the training config."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ResNetError(f"--set {item!r}: expected OPTION=VALUE, e.g. --set batch_size=64")
        out[key.strip().replace("-", "_")] = value.strip()
    return out
