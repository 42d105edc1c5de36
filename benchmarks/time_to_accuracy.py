"""Time to accuracy: the ``cifar-fast`` recipe against the paper's recipe compressed to the same time.

Both recipes train the same network (default: the paper's ResNet-20) on the same 45k/5k split, for the
same number of epochs with the same batch and the same speed options (``--precision native
--channels-last on``), so they take the same wall time; only the recipe differs. ``cifar-paper`` keeps
its schedule shape (LR 0.1, /10 at 50% and 75% of the run) squeezed into that length. Each run goes
through ``resnet train`` in a subprocess, as a user runs it, and validates once per epoch; every
validation record carries the run's wall time, so the curve is validation error against minutes.

    python benchmarks/time_to_accuracy.py --data-dir cifar10-jpg/train --seeds 1,2
    python benchmarks/time_to_accuracy.py --data-dir cifar10-jpg/train --seeds 1 --only cifar-fast
    python benchmarks/time_to_accuracy.py --data-dir cifar10-jpg/train --seeds 0 --only cifar-fast \
        --time-limit 30m --train-args "--cutout 16"

``--train-args`` adds options to every run (a lever tried against the recipe as it is): they name the
run folders and the table's rows, so runs with and without them can share an ``--out``.

Prints one Markdown table (final validation error, total wall time from the command to the prompt,
minutes to reach each error in ``--targets``) and writes ``time_to_accuracy.png`` and ``.json`` to
``--out``. A finished run folder (one with ``summary.json``) is reused and an interrupted one resumes,
so the script can be stopped and run again. The minutes are this machine's: run it on an otherwise idle
machine, one run at a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resnet.train.metrics import read_metrics  # noqa: E402
from resnet.train.recipes import RECIPES as PRESETS  # noqa: E402

RECIPES = ("cifar-fast", "cifar-paper")
SPEED = ["--precision", "native", "--channels-last", "on"]


def minutes_to(points: list[tuple[float, float]], target: float) -> float | None:
    """The first wall time (minutes) at which the validation error is at or below ``target``."""
    for minutes, error in points:
        if error <= target:
            return minutes
    return None


def val_curve(run_dir: Path, summary: dict) -> list[tuple[float, float]]:
    """(wall minutes, validation error) of every validation of a run, in order, ending with the final test.

    The final test is the recipe's own protocol (``flip`` for cifar-fast, which can differ from the
    last single-view validation), at the run's wall time when it ended (``summary``, as :func:`run` returns it)."""
    points = [
        (r["wall_s"] / 60, r["val_error"])
        for r in read_metrics(run_dir / "metrics.jsonl")
        if r.get("kind") == "val" and "wall_s" in r
    ]
    if summary.get("final"):
        points.append((summary["wall_time_s"] / 60, summary["final"]["top1_error"]))
    return points


def flags_for(recipe: str, args: argparse.Namespace, seed: int) -> list[str]:
    common = [
        "--recipe",
        recipe,
        "--model",
        args.model,
        "--data",
        args.data,
        "--data-dir",
        args.data_dir,
        "--seed",
        str(seed),
        "--eval-every",
        "0",
        "--quiet",
        *SPEED,
    ]
    extra = shlex.split(getattr(args, "train_args", "") or "")
    if args.time_limit:  # each run plans its own length to end within the limit (docs/training.md)
        return [*common, "--time-limit", args.time_limit, *extra]
    # The paper's recipe counts iterations (64k); here it gets the fast recipe's length in epochs.
    length = ["--epochs", str(args.epochs)] + (["--iterations", "none"] if recipe == "cifar-paper" else [])
    return [*common, *length, *extra]


def row_name(recipe: str, train_args: str) -> str:
    """A table row's and a run folder's name: the recipe and the options added to it (``--train-args``)."""
    return f"{recipe} {' '.join(shlex.split(train_args))}" if train_args.strip() else recipe


def folder_name(model: str, name: str, seed: int) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", f"{model}-{name}").strip("-") + f"-seed{seed}"


def run(run_dir: Path, flags: list[str]) -> dict:
    """One ``resnet train``; returns its summary with ``command_s``, the time from command to prompt."""
    summary = run_dir / "summary.json"
    timing = run_dir / "command_time.json"
    if summary.is_file() and not timing.is_file() and "session_s" in json.loads(summary.read_text()):
        # A run made by `resnet train` itself: its own time from the command's start to its end.
        print(f"reusing {run_dir} (its summary's session_s)", flush=True)
        s = json.loads(summary.read_text())
        return {**s, "command_s": s["session_s"]}
    if summary.is_file() and timing.is_file():
        print(f"reusing {run_dir}", flush=True)
    else:
        resume = ["--resume", str(run_dir)] if (run_dir / "last.safetensors").is_file() else []
        cmd = [sys.executable, "-m", "resnet", "train", *(resume or ["--run-dir", str(run_dir), *flags])]
        print(" ".join(["resnet", *cmd[3:]]), flush=True)
        before = json.loads(timing.read_text())["command_s"] if timing.is_file() else 0.0
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        # Summed over interruptions, as the run's own wall time is.
        timing.write_text(json.dumps({"command_s": before + time.perf_counter() - start}) + "\n")
    return {**json.loads(summary.read_text()), **json.loads(timing.read_text())}


def table(results: dict[str, dict[int, dict]], curves: dict[str, dict[int, list]], targets: list[float]) -> str:
    # Epochs and training images/s say what bounds a budget: how much training the machine fits in it.
    head = [
        "recipe",
        "seed",
        "epochs",
        "training images/s",
        "final val err (%)",
        "command to prompt (min)",
        *(f"min to {100 * t:g}% val err" for t in targets),
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for recipe, by_seed in results.items():
        for seed, s in sorted(by_seed.items()):
            final = s["final"]["top1_error"] if s.get("final") else float("nan")
            reach = [minutes_to(curves[recipe][seed], t) for t in targets]
            lines.append(
                "| "
                + " | ".join(
                    [
                        recipe,
                        str(seed),
                        f"{s['epochs']:.3g}",
                        f"{s['images_per_s']:.0f}",
                        f"{100 * final:.2f}",
                        f"{s['command_s'] / 60:.1f}",
                        *("-" if m is None else f"{m:.1f}" for m in reach),
                    ]
                )
                + " |"
            )
        finals = [s["final"]["top1_error"] for s in by_seed.values() if s.get("final")]
        if len(finals) > 1:
            mean = sum(finals) / len(finals)
            sd = math.sqrt(sum((f - mean) ** 2 for f in finals) / (len(finals) - 1))
            lines.append(
                f"| {recipe} | mean of {len(finals)} | | | {100 * mean:.2f} ± {100 * sd:.2f} | | "
                + " | ".join("" for _ in targets)
                + " |"
            )
    return "\n".join(lines)


def plot(curves: dict[str, dict[int, list]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (recipe, by_seed) in enumerate(curves.items()):
        for j, (seed, points) in enumerate(sorted(by_seed.items())):
            ax.plot(
                [m for m, _ in points],
                [100 * e for _, e in points],
                color=f"C{i}",
                marker="o",
                markersize=3,
                linestyle=("-", "--", ":")[j % 3],
                label=f"{recipe}, seed {seed}",
            )
    ax.set_xlabel("wall-clock minutes (training loop with its validations)")
    ax.set_ylabel("validation error (%)")
    ax.set_ylim(0, 60)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="imagefolder", choices=("imagefolder", "cifar10"))
    p.add_argument(
        "--data-dir",
        required=True,
        help="CIFAR-10: the JPEG folder <dir>/<class>/*.jpg, or the official python files with --data cifar10",
    )
    p.add_argument("--model", default="resnet20")
    p.add_argument("--epochs", type=float, default=None, help="length of every run (default: cifar-fast's)")
    p.add_argument(
        "--time-limit",
        default=None,
        metavar="DURATION",
        help="instead of --epochs: every run plans its length to end within this time (e.g. 30m)",
    )
    p.add_argument("--seeds", default="1,2", help="comma-separated seeds (the recipe was chosen with seed 0)")
    p.add_argument("--only", choices=RECIPES, default=None, help="run one recipe only")
    p.add_argument(
        "--train-args",
        default="",
        metavar="OPTIONS",
        help='options added to every run\'s `resnet train` (e.g. "--cutout 16"); they name its folder and row',
    )
    p.add_argument("--targets", default="0.2,0.15,0.12", help="validation errors to time (fractions)")
    p.add_argument("--out", type=Path, default=Path("time-to-accuracy"))
    args = p.parse_args()
    if args.epochs is None:
        args.epochs = PRESETS["cifar-fast"]["epochs"]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    targets = [float(t) for t in args.targets.split(",") if t.strip()]

    recipes = [args.only] if args.only else list(RECIPES)
    names = {r: row_name(r, args.train_args) for r in recipes}
    results: dict[str, dict[int, dict]] = {names[r]: {} for r in recipes}
    curves: dict[str, dict[int, list]] = {names[r]: {} for r in recipes}
    for seed in seeds:
        for recipe in recipes:
            name = names[recipe]
            run_dir = args.out / "runs" / folder_name(args.model, name, seed)
            results[name][seed] = run(run_dir, flags_for(recipe, args, seed))
            curves[name][seed] = val_curve(run_dir, results[name][seed])

    text = table(results, curves, targets)
    length = f"--time-limit {args.time_limit} each" if args.time_limit else f"{args.epochs:g} epochs each"
    print(f"\n{args.model}, {length}, 45k/5k split, {' '.join(SPEED)}\n\n{text}")
    args.out.mkdir(parents=True, exist_ok=True)
    plot(
        curves,
        args.out / "time_to_accuracy.png",
        f"{args.model}: "
        + (
            " vs ".join(names.values()) + f", --time-limit {args.time_limit}"
            if args.time_limit
            else f"{' vs '.join(names.values())}, {args.epochs:g} epochs"
            + (" each (cifar-paper compressed to them)" if len(recipes) > 1 else "")
        ),
    )
    (args.out / "time_to_accuracy.json").write_text(
        json.dumps(
            {
                "model": args.model,
                "epochs": args.epochs,
                "table": text,
                "curves": {r: {str(s): c for s, c in by.items()} for r, by in curves.items()},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nfigure: {args.out / 'time_to_accuracy.png'}")


if __name__ == "__main__":
    main()
