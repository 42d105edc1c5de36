"""One self-contained HTML page and a Markdown twin for a set of runs.

The page holds each run's configuration, its error curves (the paper's Figure 6 style), a table of
final numbers and any figures the runs' folders already contain (layer responses, gradient flow).
Images are embedded as data URIs, so the HTML file can be mailed or opened offline; the Markdown
version links PNG files written beside it.
"""

from __future__ import annotations

import base64
import html
import json
import math
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from resnet.atomic_files import atomic_write
from resnet.errors import ResNetError
from resnet.markdown import markdown_code, markdown_escape, markdown_table
from resnet.train.metrics import read_metrics

# Which settings a reader wants first; the whole resolved config is in a collapsible block below.
KEY_SETTINGS = (
    "model",
    "depth",
    "shortcut",
    "data",
    "recipe",
    "iterations",
    "epochs",
    "batch_size",
    "lr",
    "schedule",
    "augment",
    "normalization",
    "val_split",
    "seed",
)


@dataclass
class Run:
    """What the report needs from one run folder."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_plain(self) -> bool:
        return str(self.config.get("model", "")).startswith(("plain", "cifar_plain"))

    def curve(self, kind: str, key: str) -> tuple[list[int], list[float]]:
        points = [(r["step"], r[key]) for r in self.metrics if r.get("kind") == kind and key in r]
        return [s for s, _ in points], [v for _, v in points]

    @property
    def best_val_error(self) -> float | None:
        _, errors = self.curve("val", "val_error")
        return min(errors) if errors else None

    @property
    def final(self) -> dict[str, Any] | None:
        """The run's final result under its final protocol (summary.json), the number training printed."""
        final = self.summary.get("final")
        return final if isinstance(final, dict) and "top1_error" in final else None

    @property
    def final_val_error(self) -> float | None:
        """The final result, else (a run without one, e.g. unfinished) the last periodic validation."""
        if self.final is not None:
            return float(self.final["top1_error"])
        _, errors = self.curve("val", "val_error")
        return errors[-1] if errors else None

    def setting(self, key: str) -> Any:
        """A setting as the run resolved it (config.json's ``resolved`` part: iterations, depth, shortcut),
        else as configured."""
        resolved = self.config.get("resolved")
        if isinstance(resolved, dict) and resolved.get(key) is not None:
            return resolved[key]
        return self.config[key]

    def settings(self) -> list[list[str]]:
        """The key settings' rows: those the config names or the run resolved."""
        resolved = self.config.get("resolved")
        if not isinstance(resolved, dict):
            resolved = {}
        keys = [k for k in KEY_SETTINGS if k in self.config or resolved.get(k) is not None]
        return [["setting", "value"]] + [[k, plain_value(self.setting(k))] for k in keys]


def load_run(path: str | Path) -> Run:
    """Read a run folder; a folder without a config or metrics is an error naming the missing file."""
    folder = Path(path)
    if not folder.is_dir():
        raise ResNetError(f"{folder}: not a run folder (no such directory)")
    for required in ("config.json", "metrics.jsonl"):
        if not (folder / required).is_file():
            raise ResNetError(f"{folder}: not a run folder ({required} is missing)")
    try:
        config = json.loads((folder / "config.json").read_text())
    except ValueError as e:
        raise ResNetError(f"{folder / 'config.json'}: not valid JSON ({e})") from None
    summary: dict[str, Any] = {}
    if (folder / "summary.json").is_file():
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except ValueError as e:
            raise ResNetError(f"{folder / 'summary.json'}: not valid JSON ({e})") from None
    figures = sorted(folder.glob("*.png"))
    return Run(folder, config, read_metrics(folder / "metrics.jsonl"), summary, figures)


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def plain_value(value: Any) -> str:
    """A config value as a reader writes it: resnet20, none, 5000, 0.1, 0.5,0.75 (not JSON's quotes and 5000.0)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(plain_value(v) for v in value)
    return str(value)


def results_table(runs: list[Run]) -> list[list[str]]:
    """One row per run: the numbers a reader compares. The final val error is the run's final result under its
    final protocol (summary.json: what training printed), else the last periodic validation."""
    rows = [
        [
            "run",
            "model",
            "params",
            "iterations",
            "best val error (%)",
            "final val error (%)",
            "final protocol",
            "wall time (s)",
            "images/s",
        ]
    ]
    for run in runs:
        s = run.summary
        steps = s.get("iterations") or (run.metrics[-1]["step"] if run.metrics else 0)
        rows.append(
            [
                run.name,
                str(run.config.get("model", "?")),
                f"{s['params']:,}" if "params" in s else "-",
                str(steps),
                _pct(run.best_val_error),
                _pct(run.final_val_error),
                str(run.final["protocol"]) if run.final is not None else "-",
                f"{s['wall_time_s']:.0f}" if "wall_time_s" in s else "-",
                f"{s['images_per_s']:.0f}" if "images_per_s" in s else "-",
            ]
        )
    return rows


def curves_figure(runs: list[Run], path: Path) -> Path | None:
    """Figure 6 style: plain nets in one panel and ResNets in the other (one panel if only one kind)."""
    from resnet.plots import plot_error_curves

    # {panel: {run: (train steps, train errors, val steps, val errors)}}
    panels: dict[str, dict[str, tuple[list[int], list[float], list[int], list[float]]]] = {}
    for run in runs:
        ts, te = run.curve("train", "train_error")
        vs, ve = run.curve("val", "val_error")
        if not ts and not vs:
            continue
        panel = "plain networks" if run.is_plain else "residual networks"
        panels.setdefault(panel, {})[run.name] = (ts, te, vs, ve)
    if not panels:
        return None
    ordered: dict[str, dict[str, tuple[list[int], list[float], list[int], list[float]]]] = {
        k: panels[k] for k in ("plain networks", "residual networks") if k in panels
    }
    return plot_error_curves(ordered, path)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px; }
.meta { color: #666; font-size: 13px; }
"""


def write_report(
    run_dirs: list[str | Path],
    out_dir: str | Path,
    title: str = "ResNet runs",
    extra_tables: dict[str, list[list[str]]] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ PNGs) into ``out_dir``."""
    if not run_dirs:
        raise ResNetError("report needs at least one run folder")
    runs = [load_run(d) for d in run_dirs]
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResNetError(f"{out}: cannot create the report folder ({e.strerror})") from None
    curves = curves_figure(runs, out / "curves.png")
    table = results_table(runs)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    # Names and values come from run folders: escaped in the Markdown as in the HTML.
    md = [
        f"# {markdown_escape(title)}",
        "",
        f"Generated {stamp} from {len(runs)} run(s).",
        "",
        "## Results",
        "",
        markdown_table(table, escape=True),
    ]
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>Generated {stamp} from {len(runs)} run(s).</p>",
        "<h2>Results</h2>",
        _html_table(table),
    ]
    for heading, rows in (extra_tables or {}).items():
        md += ["", f"## {markdown_escape(heading)}", "", markdown_table(rows, escape=True)]
        body += [f"<h2>{html.escape(heading)}</h2>", _html_table(rows)]
    if curves is not None:
        md += [
            "",
            "## Error curves",
            "",
            "Training error dashed, validation error bold.",
            "",
            f"![error curves]({curves.name})",
        ]
        body += [
            "<h2>Error curves</h2><p>Training error dashed, validation error bold.</p>",
            f"<img alt='error curves' src='{_data_uri(curves)}'>",
        ]
    for run in runs:
        settings = run.settings()
        md += [
            "",
            f"## Run {markdown_code(run.name)}",
            "",
            f"Folder: {markdown_code(str(run.path))}",
            "",
            markdown_table(settings, escape=True),
        ]
        body += [
            f"<h2>Run {html.escape(run.name)}</h2>",
            f"<p class='meta'>Folder: {html.escape(str(run.path))}</p>",
            _html_table(settings),
        ]
        for fig in run.figures:
            copy = out / f"{run.name}-{fig.name}"
            copy.write_bytes(fig.read_bytes())
            md += ["", f"![{markdown_escape(fig.stem)}]({urllib.parse.quote(copy.name)})"]
            body.append(f"<h3>{html.escape(fig.stem)}</h3><img alt='{html.escape(fig.stem)}' src='{_data_uri(fig)}'>")
        full = html.escape(json.dumps(run.config, indent=2))
        body.append(f"<details><summary>full configuration</summary><pre>{full}</pre></details>")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write(html_path, page.encode())
    atomic_write(md_path, ("\n".join(md) + "\n").encode())
    return html_path, md_path
