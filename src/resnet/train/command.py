"""``resnet train``: arguments, the DDP launcher hand-off, and what is printed at the end."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from resnet.errors import ResNetError
from resnet.option_types import positive_int
from resnet.train import config as C


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=None,
                   help="TOML file of options (same names as the flags; flags override it)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR exactly where its last checkpoint left off")
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="processes on this machine (DDP through torchrun; one per GPU) (default: 1)")
    C.add_arguments(p)


def _flags(given: dict[str, Any]) -> list[str]:
    """Command-line flags that reproduce ``given`` (for the processes torchrun starts)."""
    out = []
    for name, value in given.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out


def run_train(args: argparse.Namespace) -> int:
    given = C.given_options(args)
    if args.nproc < 1:
        raise ResNetError("option 'nproc': must be at least 1")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        from resnet.train.distributed import launch

        argv = ["train"] + (["--config", args.config] if args.config else []) + \
               (["--resume", args.resume] if args.resume else []) + _flags(given)
        launch(args.nproc, argv)
        return 0

    from resnet.train.trainer import Interrupted, train

    try:
        if args.resume:
            if given or args.config:
                raise ResNetError(f"--resume continues the run with its saved config; drop "
                                  f"{', '.join('--' + k.replace('_', '-') for k in given) or '--config'}")
            result = train(resume=args.resume)
        else:
            result = train(C.resolve(given, args.config))
    except Interrupted as e:
        print(f"resnet: {e}", file=sys.stderr)
        return 130
    if result.summary and int(os.environ.get("RANK", "0")) == 0:
        s = result.summary
        if s["final"]:
            f = s["final"]
            print(f"final validation ({f['protocol']}): top-1 error {100 * f['top1_error']:.2f}% "
                  f"(accuracy {100 * (1 - f['top1_error']):.2f}%), top-5 error {100 * f['top5_error']:.2f}%, "
                  f"{f['images']} images")
        print(f"{s['iterations']} iterations in {s['wall_time_s']:.1f} s ({s['images_per_s']:.0f} images/s)")
        print(f"run folder: {result.run_dir}")
    return 0
