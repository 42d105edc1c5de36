"""Training-error and loss curves of several early-training runs on one figure (issue 13).

Each input is ``LABEL=PATH`` where PATH is a run folder of ``resnet train`` (its ``metrics.jsonl``)
or the JSON-lines output of ``benchmarks/control_resnet56.py``; both hold one record per window of
steps with ``step``, ``loss`` and ``train_error``. Prints the curves side by side as a Markdown table
and writes the figure.

    python benchmarks/plot_early_training.py --out docs/resnet56-start.png \
        project=/tmp/i13/project-r56 control=/tmp/i13/control-r56.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_curve(path: Path) -> dict[int, tuple[float, float]]:
    """step -> (loss, training error) of every training record."""
    file = path / "metrics.jsonl" if path.is_dir() else path
    curve = {}
    for line in file.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind", "train") == "train":
            curve[int(rec["step"])] = (float(rec["loss"]), float(rec["train_error"]))
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="LABEL=PATH")
    p.add_argument("--out", type=Path, required=True, help="PNG file")
    p.add_argument("--every", type=int, default=50, help="table rows every N steps")
    p.add_argument("--title", default="ResNet-56, CIFAR-10 JPEGs, batch 128, constant LR 0.1 (first steps)")
    args = p.parse_args()
    curves = {}
    for item in args.runs:
        label, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected LABEL=PATH")
        curves[label] = read_curve(Path(path))

    fig, (ax_err, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curve in curves.items():
        steps = sorted(curve)
        ax_err.plot(steps, [100 * curve[s][1] for s in steps], label=label)
        ax_loss.plot(steps, [curve[s][0] for s in steps], label=label)
    ax_err.axhline(90, color="grey", lw=0.8, ls=":")
    ax_loss.axhline(2.3026, color="grey", lw=0.8, ls=":")
    ax_err.set(xlabel="step", ylabel="training error (%) of the last window", ylim=(0, 100))
    ax_loss.set(xlabel="step", ylabel="training loss of the last window", yscale="log")
    ax_err.legend()
    fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)

    labels = list(curves)
    steps = sorted({s for c in curves.values() for s in c if s % args.every == 0 or s == 10})
    print("| step | " + " | ".join(f"{lab}: err % / loss" for lab in labels) + " |")
    print("| --- |" + " --- |" * len(labels))
    for s in steps:
        cells = [f"{100 * c[s][1]:.1f} / {c[s][0]:.2f}" if s in c else "-" for c in curves.values()]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
