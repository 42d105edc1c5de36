"""`resnet bench --quick`: the table's shape (never a time: timings depend on the machine)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from resnet.bench import format_table
from resnet.cli import main


@pytest.fixture(scope="module")
def quick_result():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--quick", "--json", "--device", "cpu"]) == 0
    return json.loads(out.getvalue())


def test_quick_json_has_every_row(quick_result):
    rows = quick_result["rows"]
    assert quick_result["device"] == "cpu" and quick_result["torch"] and quick_result["machine"]
    for model in ("resnet20", "resnet50"):
        for task in ("train", "infer"):
            impls = {r["implementation"]: r for r in rows if r["model"] == model and r["task"] == task}
            assert {"baseline", "fast"} <= set(impls)
            assert impls["baseline"]["vs_baseline"] == pytest.approx(1.0)
            assert impls["fast"]["images_per_s"] > 0 and impls["fast"]["vs_baseline"] > 0
    infer50 = {r["implementation"]: r for r in rows if r["model"] == "resnet50" and r["task"] == "infer"}
    if importlib.util.find_spec("torchvision") is None:
        assert infer50["torchvision"]["images_per_s"] is None and "skipped" in infer50["torchvision"]["note"]
    assert "onnxruntime" in infer50
    fast20 = next(
        r for r in rows if r["model"] == "resnet20" and r["task"] == "infer" and r["implementation"] == "fast"
    )
    assert fast20["extra"]["max_abs_diff"] < 1e-3  # the fast path computes the same logits
    for row in rows:  # present only on CPUs with native bf16
        if row["implementation"] == "fast-bf16":
            assert "bf16" in row["note"] and row["images_per_s"] > 0


def test_table_has_a_line_per_row_and_ratio_last(quick_result):
    lines = format_table(quick_result).splitlines()
    assert len(lines) == 3 + len(quick_result["rows"])
    assert lines[1].rstrip(" |").endswith("vs baseline")
    assert all(line.rstrip(" |").endswith(("x", "-")) for line in lines[3:])


def test_unknown_model_is_a_user_error(capsys):
    assert main(["bench", "--quick", "--models", "resnet18"]) == 2
    assert "--models" in capsys.readouterr().err


def test_groups_can_share_one_process(capsys):
    assert main(["bench", "--quick", "--json", "--isolate", "off", "--models", "resnet20", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["isolate"] is False
    assert {(r["task"], r["implementation"]) for r in result["rows"]} >= {("train", "fast"), ("infer", "fast")}
