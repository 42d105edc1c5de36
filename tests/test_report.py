"""The HTML/Markdown report: numbers in its tables come from the runs, figures are embedded."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resnet.errors import ResNetError
from resnet.report import load_run, results_table, write_report


def make_run(root: Path, name: str, model: str, val_errors: list[float]) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": model, "data": "cifar10", "iterations": 300}))
    lines = []
    for i, err in enumerate(val_errors, start=1):
        lines.append(
            {
                "kind": "train",
                "step": 100 * i,
                "epoch": i,
                "loss": 1.0,
                "train_error": err + 0.05,
                "lr": 0.1,
                "images_per_s": 500.0,
            }
        )
        lines.append(
            {"kind": "val", "step": 100 * i, "epoch": i, "val_error": err, "val_top5_error": 0.01, "val_loss": 1.0}
        )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"torn": ')
    (run / "summary.json").write_text(
        json.dumps({"params": 269722, "iterations": 300, "wall_time_s": 12.3, "images_per_s": 512.0})
    )
    return run


def test_results_table_holds_the_runs_numbers(tmp_path: Path) -> None:
    runs = [
        load_run(make_run(tmp_path, "resnet20", "resnet20", [0.5, 0.3, 0.35])),
        load_run(make_run(tmp_path, "plain20", "plain20", [0.6, 0.45, 0.4])),
    ]
    rows = results_table(runs)
    assert rows[1][:6] == ["resnet20", "resnet20", "269,722", "300", "30.00", "35.00"]
    assert rows[2][4:6] == ["40.00", "40.00"]
    assert runs[1].is_plain and not runs[0].is_plain


def test_report_is_self_contained_html_and_markdown(tmp_path: Path) -> None:
    a = make_run(tmp_path / "runs", "resnet20", "resnet20", [0.5, 0.3])
    b = make_run(tmp_path / "runs", "plain20", "plain20", [0.6, 0.5])
    html_path, md_path = write_report([a, b], tmp_path / "report", title="Degradation")
    page = html_path.read_text()
    assert "<h1>Degradation</h1>" in page and "30.00" in page
    uris = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert uris and base64.b64decode(uris[0])[:4] == b"\x89PNG"
    assert "http://" not in page and "https://" not in page  # nothing to fetch when viewed
    md = md_path.read_text()
    assert "| resnet20 | resnet20 | 269,722 | 300 | 30.00 | 30.00 |" in md
    assert (tmp_path / "report" / "curves.png").is_file()


def test_report_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ResNetError, match="no such directory"):
        load_run(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ResNetError, match=r"half: not a run folder \(metrics.jsonl is missing\)"):
        load_run(tmp_path / "half")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package 'chromium')")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "resnet20", "resnet20", [0.5, 0.3])
    html_path, _ = write_report([run], tmp_path / "report")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            html_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    with Image.open(shot) as img:
        colours = img.convert("RGB").resize((60, 80)).getcolors(60 * 80)
    assert colours is not None and len(colours) > 20  # a rendered page with a figure, not a blank one


def _cells(row: str) -> list[str]:
    """A Markdown table row split at its unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_report_markdown_escapes_names_and_values(tmp_path: Path) -> None:
    name = "a|b <script>alert(1)<\\script> *x*"  # a folder name: no slash
    run = make_run(tmp_path / "runs", name, "resnet20", [0.5, 0.3])
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": "c|d\n<b>e</b>"}))
    _, md_path = write_report([run], tmp_path / "report", title="T | <i>", extra_tables={"x|y": [["h|1"], ["`v`"]]})
    md = md_path.read_text()
    assert "<script>" not in md and "<b>" not in md and "<i>" not in md and "<" not in md
    results = md.split("## Results\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(results) == 3 and {len(_cells(line)) for line in results} == {len(_cells(results[0]))} == {9}
    row = results[2]
    assert _cells(row)[0].strip() == r"a\|b &lt;script&gt;alert(1)&lt;\\script&gt; \*x\*"
    assert "| data | c\\|d &lt;b&gt;e&lt;/b&gt; |" in md  # a newline in a value would end the row
    assert md.startswith("# T \\| &lt;i&gt;\n") and "## x\\|y" in md and "| \\`v\\` |" in md
    assert r"## Run a\|b &lt;script&gt;alert(1)&lt;\\script&gt; \*x\*" in md  # not a code span: it holds a tag


@pytest.mark.parametrize(
    ("text", "escaped", "code"),
    [
        ("resnet20", "resnet20", "`resnet20`"),
        ("a|b", "a\\|b", "`a|b`"),
        ("<script>", "&lt;script&gt;", "&lt;script&gt;"),
        ("x & y", "x &amp; y", "x &amp; y"),
        ("two\nlines", "two lines", "`two lines`"),
        ("`tick`", "\\`tick\\`", "\\`tick\\`"),
        ("[l](javascript:x)", "\\[l\\](javascript:x)", "`[l](javascript:x)`"),
        ("back\\slash", "back\\\\slash", "`back\\slash`"),
    ],
)
def test_markdown_escape_and_code(text: str, escaped: str, code: str) -> None:
    from resnet.markdown import markdown_code, markdown_escape

    assert markdown_escape(text) == escaped
    assert markdown_code(text) == code


def test_the_report_shows_the_final_result_and_resolved_settings(tmp_path: Path, trained_run: Path) -> None:
    """Issue 22 item 4: the final result training printed (not the last periodic validation), and the
    settings the run resolved (iterations, depth, shortcut), not `none`."""
    run = make_run(tmp_path, "r20", "resnet20", [0.5, 0.4306])
    config = {"model": "resnet20", "depth": None, "shortcut": None, "iterations": None, "epochs": 1.0}
    config["resolved"] = {"iterations": 351, "depth": 20, "shortcut": "A", "epochs": 1.0}
    (run / "config.json").write_text(json.dumps(config))
    final = {"protocol": "ten-crop", "top1_error": 0.4282, "top5_error": 0.1, "loss": 1.2, "images": 5000}
    (run / "summary.json").write_text(json.dumps({"params": 269722, "iterations": 351, "final": final}))
    rows = results_table([load_run(run)])
    assert rows[0][5:7] == ["final val error (%)", "final protocol"] and rows[1][5:7] == ["42.82", "ten-crop"]
    md = write_report([run], tmp_path / "report")[1].read_text()
    for row in ("| iterations | 351 |", "| depth | 20 |", "| shortcut | A |"):
        assert row in md
    # A real run resolves them too (cifar_resnet with --depth 8: option A shortcuts).
    settings = dict(load_run(trained_run).settings()[1:])
    assert (settings["depth"], settings["shortcut"], settings["iterations"]) == ("8", "A", "40")
