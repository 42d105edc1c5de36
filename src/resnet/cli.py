"""The ``resnet`` command: one subcommand per job, each a thin wrapper over the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from resnet import __version__
from resnet.errors import ResNetError

# Each subcommand is a pair of functions: one adds its parser, one runs it.
Command = tuple[str, Callable[[argparse._SubParsersAction], argparse.ArgumentParser]]


def _add_summary(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "summary",
        help="per-stage output sizes, blocks, parameters and multiply-adds of a network",
        description="Print the paper's Table 1 view of a network: each stage's output size, its "
        "blocks, parameters and multiply-adds (convolutions and fully connected layers).",
    )
    p.add_argument("model", nargs="?", help=f"network name (see `resnet summary --all`), e.g. resnet50, resnet56, plain20")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N", default=None,
                   help="input height [width] in pixels (default: 224 for ImageNet nets, 32 for CIFAR nets)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the family's)")
    p.add_argument("--shortcut", choices=["A", "B", "C"], default=None, help="shortcut option (default: the family's)")
    p.add_argument("--stride-on", choices=["1x1", "3x3"], default=None,
                   help="where a downsampling bottleneck puts its stride (default: 1x1, the paper's)")
    p.add_argument("--depth", type=int, default=None, help="depth, for the generic builders cifar_resnet/cifar_plain (6n+2)")
    p.add_argument("--in-channels", type=int, default=None, help="input channels (default: 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--table1", action="store_true", help="the paper's Table 1 for the whole ImageNet family")
    p.add_argument("--all", action="store_true", help="a Markdown table of every network: parameters and multiply-adds")
    p.set_defaults(func=_run_summary)
    return p


def _run_summary(args: argparse.Namespace) -> int:
    from resnet.analysis import complexity

    return complexity.run_summary_command(args)


COMMANDS: list[Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = [
    _add_summary,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnet",
        description="Deep Residual Learning for Image Recognition (He et al. 2015): the paper's "
        "networks, recipes and experiments.",
    )
    parser.add_argument("--version", action="version", version=f"resnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ResNetError as e:
        print(f"resnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnet: interrupted", file=sys.stderr)
        return 130
