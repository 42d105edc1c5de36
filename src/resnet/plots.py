"""The paper's figures, drawn with matplotlib (headless): curves (Fig. 6), responses (Fig. 7), gradients.

Each function takes plain data (lists of numbers and labels), writes one PNG and returns its path;
the experiment and report code gathers the data. In the response and gradient plots, plain
networks are dashed and residual ones solid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from resnet.analysis.gradients import GradientProfile  # noqa: E402
from resnet.analysis.responses import LayerResponse  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_error_curves(
    panels: Mapping[str, Mapping[str, tuple[Sequence[int], Sequence[float], Sequence[int], Sequence[float]]]],
    path: str | Path,
    title: str = "",
) -> Path:
    """Figure 6: error (%) against iterations; training error dashed, validation error bold.

    ``panels`` maps a panel title (e.g. "plain", "ResNet") to ``{label: (train_steps, train_error,
    val_steps, val_error)}`` with errors as fractions.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for i, (label, (ts, te, vs, ve)) in enumerate(curves.items()):
            color = f"C{i}"
            # Markers, so that a curve of a single point (one validation of a short run) is still drawn.
            ax.plot(ts, [100 * e for e in te], "--", color=color, linewidth=1, marker="." if len(ts) == 1 else None)
            ax.plot(
                vs,
                [100 * e for e in ve],
                "-",
                color=color,
                linewidth=2.2,
                label=label,
                marker="o",
                markersize=3 if len(vs) > 1 else 6,
            )
        ax.set_title(panel)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        ax.legend(title="bold: validation, dashed: training", fontsize=8, title_fontsize=8)
    axes[0][0].set_ylabel("error (%)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_responses(responses: Mapping[str, Sequence[LayerResponse]], path: str | Path) -> Path:
    """Figure 7: std of each 3x3 layer's response, in layer order (top) and sorted by magnitude (bottom)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5))
    for i, (label, layers) in enumerate(responses.items()):
        stds = [r.std for r in layers]
        style = "--" if label.startswith("plain") else "-"
        top.plot(range(1, len(stds) + 1), stds, style, color=f"C{i}", label=label, marker=".", markersize=3)
        bottom.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), style, color=f"C{i}", label=label)
    top.set_title("layer responses (std), original order")
    bottom.set_title("layer responses (std), sorted by magnitude")
    for ax in (top, bottom):
        ax.set_xlabel("layer index (3x3 layers)")
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_gradient_flow(profiles: Sequence[GradientProfile], path: str | Path) -> Path:
    """Per-layer gradient norms (log scale), one panel per measurement step, one line per network."""
    steps = sorted({p.step for p in profiles})
    fig, axes = plt.subplots(1, len(steps), figsize=(6.5 * len(steps), 4.2), sharey=True, squeeze=False)
    names = list(dict.fromkeys(p.model for p in profiles))
    for ax, step in zip(axes[0], steps):
        for p in profiles:
            if p.step != step:
                continue
            color = f"C{names.index(p.model)}"
            style = "--" if p.model.startswith("plain") else "-"
            ax.semilogy(range(1, len(p.norms) + 1), p.norms, style, color=color, label=p.model)
        ax.set_title("at initialisation" if step == 0 else f"after {step} SGD steps")
        ax.set_xlabel("layer index (input -> output)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("||dL/dW||")
    return _save(fig, path)
