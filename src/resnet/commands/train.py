"""``resnet train``: one training run from the recipe, a TOML file and flags; handed to torchrun for
``--nproc N``; its final numbers printed at the end."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet.commands import train_options
from resnet.errors import ResNetError
from resnet.option_types import positive_int
from resnet.train import config as C

if TYPE_CHECKING:
    from resnet.train.distributed import DistInfo

DESCRIPTION = (
    "Train a network. With no arguments: ResNet-20 on the 1,797 scikit-learn digits "
    "(330 iterations; 13 s from command to prompt on 2 idle AMD EPYC cores). Options resolve as: "
    "defaults -> --recipe -> --config FILE -> "
    "flags. --batch-size is the global batch (summed over all processes of a DDP run, the LR is for "
    "it); run many processes with --nproc N or `torchrun --nproc-per-node N -m resnet train ...`."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="TOML file of options (same names as the flags; flags override it)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR exactly where its last checkpoint left off. A finished run "
        "is left as it is; --iterations N or --epochs E with --resume give the run a new length "
        "(e.g. extend a finished run): the LR schedule is recomputed for the new length (multistep "
        "milestones are fractions of it, cosine reaches 0 at its end) and the steps already taken "
        "are kept, not redone",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start the new run even if --run-dir holds a run: that run's files (checkpoints, "
        "metrics, logs, exports) are deleted first",
    )
    p.add_argument(
        "--nproc",
        type=positive_int,
        default=1,
        help="processes on this machine (DDP through torchrun; one per GPU) (default: 1)",
    )
    train_options.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    given = train_options.given_options(args)
    _check(args, given)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args, given)

    from resnet.train import distributed

    distributed.bind_to_launcher()
    info = distributed.from_env()
    status = _train_here(args, given, info)
    if info.enabled:
        # A process of a multi-process run ends without the interpreter's teardown: the process group is
        # destroyed, its output flushed and its files closed, but gloo's and the store's C++ threads,
        # torn down at exit, can still abort a finished process under load ("terminate called without
        # an active exception", SIGABRT), and torchrun would report a finished run as failed.
        distributed.exit_now(status)
    return status


def _train_here(args: argparse.Namespace, given: dict[str, Any], info: DistInfo) -> int:
    """Train in this process (one of the run's processes under torchrun); the command's exit status."""
    from resnet.train import distributed
    from resnet.train.trainer import Interrupted, WorkerDied, train

    try:
        if args.resume:
            result = train(
                resume=args.resume,
                iterations=given.get("iterations"),
                epochs=given.get("epochs"),
                quiet=given.get("quiet"),
            )
        else:
            result = train(
                C.resolve(given, args.config), overwrite=args.overwrite, started=getattr(args, "started", None)
            )
    except Interrupted as e:
        if isinstance(e, WorkerDied):  # each process's own workers: the process that lost one says so
            print(f"resnet: {e}", file=sys.stderr)
            return 1
        if info.is_main:  # one hint per run, not one per process
            print(f"resnet: {e}", file=sys.stderr)
            return distributed.STOPPED
        # The run's status is the main process's: torchrun ends the other processes as soon as one
        # exits non-zero, which could end the main one before it has printed how to resume.
        return 0
    except ResNetError as e:
        if info.enabled and distributed.hand_to_launcher(e):
            if isinstance(e, distributed.PeerFailure):
                distributed.exit_now(2)
            return 2  # `resnet train --nproc` prints the run's one line
        raise
    if result.finished_earlier:
        if not info.is_main:
            return 0
        s = result.summary
        print(
            f"{result.run_dir}: finished earlier ({s['iterations']} iterations), left as it is; to train it "
            f"longer: resnet train --resume {result.run_dir} --iterations N (or --epochs E)"
        )
        return 0
    if result.summary and info.is_main:
        _print_summary(result.summary, result.run_dir)
    return 0


# What --resume takes beside the run folder: a new length, and the display (no part of the run itself).
RESUME_OPTIONS = ("iterations", "epochs", "quiet")


def _check(args: argparse.Namespace, given: dict[str, Any]) -> None:
    """What --resume, --overwrite and --nproc allow together."""
    if args.nproc < 1:
        raise ResNetError("option 'nproc': must be at least 1")
    if not args.resume:
        return
    extra = [k for k in given if k not in RESUME_OPTIONS]
    if extra or args.config:
        raise ResNetError(
            f"--resume continues the run with its saved config; drop "
            f"{', '.join('--' + k.replace('_', '-') for k in extra) or '--config'} "
            f"(only --iterations or --epochs may change its length, and --quiet its display)"
        )
    if "iterations" in given and "epochs" in given:
        raise ResNetError("--resume: give the new length as --iterations or as --epochs, not both")
    if args.overwrite:
        raise ResNetError("--overwrite starts a new run; --resume continues one: drop one of them")


def _launch(args: argparse.Namespace, given: dict[str, Any]) -> int:
    """This command again in --nproc processes under torchrun."""
    from resnet.train.distributed import launch

    argv = (
        ["train"]
        + (["--config", args.config] if args.config else [])
        + (["--resume", args.resume] if args.resume else [])
        + (["--overwrite"] if args.overwrite else [])
        + train_options.flags(given)
    )
    return launch(args.nproc, argv, stop_grace_s=_dist_timeout(args, given))


def _dist_timeout(args: argparse.Namespace, given: dict[str, Any]) -> float:
    """The run's --dist-timeout as its processes will resolve it (config errors show up here, once)."""
    if args.resume:
        return C.read_run_config(Path(args.resume) / "config.json")[0].dist_timeout
    return C.resolve(given, args.config).dist_timeout


def _print_summary(s: dict[str, Any], run_dir: Path | None) -> None:
    from resnet.train.metrics import format_final

    if s["final"]:
        print(format_final(s["final"]))
    print(_times(s))
    print(f"run folder: {run_dir}")


def _times(s: dict[str, Any]) -> str:
    """Wall time and training throughput (from the training steps' time alone, validation excluded)."""
    speed = f"{s['images_per_s']:.0f} images/s" if s["images_per_s"] else "no steps timed"
    line = f"{s['iterations']} iterations in {s['wall_time_s']:.1f} s ({s['train_time_s']:.1f} s training, {speed})"
    if s["timed_iterations"] < s["iterations"]:
        line += f"; times cover the last {s['timed_iterations']} iterations (resumed from an older checkpoint)"
    if s.get("time_limit_s") and s.get("session_s"):
        line += f"; {s['session_s']:.0f} s in all, of the {s['time_limit_s']:.0f} s time limit"
    return line
