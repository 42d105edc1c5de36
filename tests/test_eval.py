"""Top-1/top-5 error: the arithmetic, multi-view averaging, and `resnet eval` on a trained run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from resnet.cli import main
from resnet.evaluate import evaluate


class _Fixed(nn.Module):
    """Logits are the input's first row: the test chooses the scores directly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :]


def test_top1_top5_errors():
    scores = torch.full((3, 1, 1, 7), -10.0)
    scores[0, 0, 0, 2] = 5  # correct at top-1
    scores[1, 0, 0, 3], scores[1, 0, 0, 1] = 5, 4  # label 1 is second: top-5 hit, top-1 miss
    scores[2, 0, 0, :6] = torch.arange(6.0)  # label 6 is last: miss in both
    result = evaluate(_Fixed(), [(scores, torch.tensor([2, 1, 6]))])
    assert (result.top1_error, result.top5_error, result.images) == pytest.approx((2 / 3, 1 / 3, 3))


def test_views_are_averaged_as_probabilities():
    views = torch.zeros(1, 2, 1, 1, 2)
    views[0, 0, 0, 0] = torch.tensor([10.0, 0.0])  # view 1: class 0, very sure
    views[0, 1, 0, 0] = torch.tensor([0.0, 1.0])  # view 2: class 1, unsure
    result = evaluate(_Fixed(), [(views, torch.tensor([0]))])
    assert result.top1_error == 0.0  # mean softmax favours class 0 (mean logits would too, mean argmax would tie)
    expected = -torch.log((torch.softmax(torch.tensor([10.0, 0.0]), 0) + torch.softmax(torch.tensor([0.0, 1.0]), 0))[0] / 2)
    assert result.loss == pytest.approx(float(expected))
    multi_scale = evaluate(_Fixed(), [([views[:, 0], views[:, 1]], torch.tensor([1]))])
    assert multi_scale.top1_error == 1.0 and multi_scale.loss == pytest.approx(-float(
        torch.log((torch.softmax(torch.tensor([10.0, 0.0]), 0) + torch.softmax(torch.tensor([0.0, 1.0]), 0))[1] / 2)))


def test_eval_command_reproduces_the_runs_validation(trained_run, capsys):
    assert main(["eval", str(trained_run), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert got["split"] == "val" and got["images"] == summary["final"]["images"]
    assert got["top1_error"] == pytest.approx(summary["best"]["val_error"])
    assert main(["eval", str(trained_run / "last.safetensors")]) == 0
    assert "top-1 error" in capsys.readouterr().out


def test_eval_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet: error: ") and "holds no checkpoint" in err and err.count("\n") == 1
