"""Does fine-tuning transfer? Pretrain on five CIFAR-10 classes, fine-tune on the other five.

1. Builds class-subset folders of symlinks (never copies) under ``--work``:
   ``pretrain/train/<5 classes>/`` with the first ``--pretrain-per-class`` images of each source class, and
   ``target/{train,val}/<5 other classes>/`` with ``--per-class`` training images and
   ``--val-per-class`` held-out images of each target class (a seeded draw; the two never overlap).
2. Trains, through ``resnet train`` (the project's CLI) with ``--quiet``:
   - ``pretrain``: ResNet-20 on the source classes;
   - ``finetune``: ``--recipe finetune --init <pretrain run>`` on the small target set;
   - ``linear-probe``: the same with ``--linear-probe`` (only the classifier learns);
   - ``scratch``: the same network from random weights, same data, epochs and batch, with the
     from-scratch LR 0.1 (the paper's) and the same cosine schedule.
3. Prints a table of the held-out error of each target run (the final validation on ``target/val``).

    nice -n 10 python benchmarks/transfer_cifar.py                  # everything, one run after the other
    nice -n 10 python benchmarks/transfer_cifar.py --only scratch   # one stage (scratch needs no pretraining)

A finished run folder (one with ``summary.json``) is reused, so stages can run side by side and the
table run afterwards only reads them. The defaults (4 epochs of all 24,500 source images, 15 target
epochs) took 10.5 minutes on 2 CPU cores with bf16 (shared with a test run); a much shorter pretraining (one epoch of a
few thousand images) leaves features too weak to transfer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

SOURCE = ("airplane", "automobile", "bird", "cat", "deer")
TARGET = ("dog", "frog", "horse", "ship", "truck")
STAGES = ("pretrain", "finetune", "linear-probe", "scratch")
SPEED = ["--precision", "bf16", "--channels-last", "on", "--quiet"]


def link_subsets(
    data: Path, work: Path, pretrain_per_class: int, per_class: int, val_per_class: int, seed: int
) -> tuple[Path, Path]:
    """The symlinked class-subset folders: the pretraining root and the target root."""
    pre, tgt = work / "pretrain", work / "target"
    rng = random.Random(seed)
    plan: list[tuple[Path, list[Path]]] = []
    for name in SOURCE:
        plan.append((pre / "train" / name, sorted((data / name).glob("*.jpg"))[:pretrain_per_class]))
    for name in TARGET:
        files = sorted((data / name).glob("*.jpg"))
        if len(files) < per_class + val_per_class:
            raise SystemExit(f"{data / name}: {len(files)} images, fewer than {per_class} + {val_per_class}")
        rng.shuffle(files)
        plan.append((tgt / "train" / name, files[:per_class]))
        plan.append((tgt / "val" / name, files[per_class : per_class + val_per_class]))
    for folder, files in plan:
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {f.name for f in files}
        for old in folder.iterdir():  # a rerun with other sizes: drop links no longer drawn
            if old.name not in wanted:
                old.unlink(missing_ok=True)
        for f in files:
            link = folder / f.name
            try:
                link.symlink_to(f.resolve())
            except FileExistsError:  # made by an earlier run, or by a stage started alongside
                pass
    return pre, tgt


def run(name: str, run_dir: Path, flags: list[str]) -> dict:
    """One ``resnet train`` in a subprocess (as a user runs it); a finished run folder is reused."""
    summary = run_dir / "summary.json"
    if summary.is_file():
        print(f"[{name}] reusing {run_dir}", flush=True)
    else:
        cmd = [sys.executable, "-m", "resnet", "train", "--run-dir", str(run_dir), *flags]
        print(f"[{name}] resnet {' '.join(cmd[3:])}", flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return json.loads(summary.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", type=Path, default=Path("/tmp/data/cifar10-jpg/train"), help="CIFAR-10 JPEGs as <data>/<class>/*.jpg"
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/transfer-cifar"),
        help="where the symlinked subsets, the cache and the run folders go",
    )
    p.add_argument("--model", default="resnet20")
    p.add_argument("--pretrain-epochs", type=float, default=4)
    p.add_argument("--pretrain-per-class", type=int, default=5000, help="source images per class (of 5000)")
    p.add_argument("--per-class", type=int, default=200, help="target training images per class")
    p.add_argument("--val-per-class", type=int, default=300, help="held-out target images per class")
    p.add_argument("--target-epochs", type=float, default=15, help="epochs of every target run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--only",
        choices=STAGES,
        default=None,
        help="run this stage alone (e.g. scratch while pretrain runs; later runs reuse it)",
    )
    args = p.parse_args()

    pre_root, tgt_root = link_subsets(
        args.data, args.work, args.pretrain_per_class, args.per_class, args.val_per_class, args.seed
    )
    runs, cache = args.work / "runs", ["--cache-dir", str(args.work / "cache")]
    common = ["--model", args.model, "--data", "imagefolder", "--seed", str(args.seed), *cache, *SPEED]

    # Validate the target runs only at the end: the held-out set is larger than the training set.
    target = [
        *common,
        "--data-dir",
        str(tgt_root),
        "--val-split",
        "none",
        "--augment",
        "cifar",
        "--epochs",
        str(args.target_epochs),
        "--batch-size",
        "64",
        "--eval-every",
        "1000000",
    ]
    init = ["--recipe", "finetune", "--init", str(runs / "pretrain")]
    flags = {
        "pretrain": [
            *common,
            "--data-dir",
            str(pre_root),
            "--val-split",
            "500",
            "--augment",
            "cifar",
            "--epochs",
            str(args.pretrain_epochs),
            "--batch-size",
            "128",
            "--lr",
            "0.1",
            "--schedule",
            "cosine",
        ],
        "finetune": [*target, *init],
        "linear-probe": [*target, *init, "--linear-probe"],
        "scratch": [*target, "--lr", "0.1", "--schedule", "cosine"],
    }
    if args.only:
        run(args.only, runs / args.only, flags[args.only])
        return
    summaries = {name: run(name, runs / name, flags[name]) for name in STAGES}
    pre = summaries["pretrain"]
    how = {
        "finetune": "--recipe finetune --init pretrain",
        "scratch": "random init, --lr 0.1 --schedule cosine",
        "linear-probe": "--recipe finetune --init pretrain --linear-probe",
    }
    rows = [(name, how[name], summaries[name]) for name in ("finetune", "linear-probe", "scratch")]

    pre_err = pre["final"]["top1_error"] if pre["final"] else float("nan")
    images = len(SOURCE) * args.pretrain_per_class - 500
    print(
        f"\npretraining: {args.model} on {', '.join(SOURCE)} ({images} images, {pre['epochs']:.1f} epochs, "
        f"{pre['wall_time_s']:.0f} s): held-out error {100 * pre_err:.2f}%"
    )
    print(
        f"target: {', '.join(TARGET)}; {args.per_class} training images per class, "
        f"{args.val_per_class} held-out per class; {args.target_epochs:g} epochs each\n"
    )
    print("| run | start | held-out top-1 error | wall time |")
    print("|---|---|---|---|")
    for name, how, s in rows:
        print(f"| {name} | {how} | {100 * s['final']['top1_error']:.2f}% | {s['wall_time_s']:.0f} s |")
    gain = rows[2][2]["final"]["top1_error"] - rows[0][2]["final"]["top1_error"]
    print(f"\nfine-tuning vs scratch: {100 * gain:+.2f} points of error removed by the pretrained start")


if __name__ == "__main__":
    main()
