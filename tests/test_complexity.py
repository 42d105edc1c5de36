"""Multiply-adds and the summary command against the paper's Table 1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet.analysis.complexity import all_models_table, model_summary, summarize, table1
from resnet.cli import main

TABLE1_MACS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}


@pytest.mark.parametrize("depth", sorted(TABLE1_MACS))
def test_multiply_adds_within_3_percent_of_table1(depth: int) -> None:
    macs = model_summary(f"resnet{depth}").macs
    assert abs(macs - TABLE1_MACS[depth]) / TABLE1_MACS[depth] < 0.03


def test_torchvision_placement_costs_4_1_gflops() -> None:
    assert round(model_summary("resnet50", stride_on="3x3").macs / 1e9, 1) == 4.1


def test_counting_rule_on_a_tiny_network() -> None:
    # conv 3->4, 3x3, stride 1 on 5x5 (pad 1): 5*5*4*3*9 = 2700; fc 4*16*... -> 4*2 = 8
    net = nn.Sequential()
    net.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    net.bn1 = nn.BatchNorm2d(4)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.flatten = nn.Flatten()
    net.fc = nn.Linear(4, 2)
    s = summarize(net, (5, 5))
    assert s.macs == 2700 + 8
    assert s.params == 3 * 4 * 9 + 8 + 4 * 2 + 2
    grouped = nn.Sequential()
    grouped.conv1 = nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False)
    assert summarize(grouped, (5, 5), in_channels=4).macs == 5 * 5 * 8 * 2 * 9


def test_stage_rows_match_table1() -> None:
    s = model_summary("resnet34")
    rows = {r.name: r for r in s.stages}
    assert [r.name for r in s.stages] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "fc"]
    assert rows["conv1"].output_shape == [64, 112, 112]
    assert rows["conv2_x"].output_shape == [64, 56, 56]
    assert rows["conv5_x"].output_shape == [512, 7, 7]
    assert [rows[f"conv{i}_x"].blocks for i in range(2, 6)] == [3, 4, 6, 3]
    assert rows["conv3_x"].layers == "[3x3, 128; 3x3, 128] x 4"
    assert sum(r.params for r in s.stages) == s.params
    assert sum(r.macs for r in s.stages) == s.macs


@pytest.mark.parametrize("name,stem", [("preact_resnet18", [64, 112, 112]), ("preact_resnet20", [16, 32, 32])])
def test_preact_stem_row_keeps_its_shape_though_its_relu_runs_again_after_final_bn(name: str, stem: list[int]) -> None:
    assert model_summary(name).stages[0].output_shape == stem


def test_dilated_summary_keeps_params_and_counts_the_denser_last_stage() -> None:
    plain, dilated = model_summary("resnet50"), model_summary("resnet50", output_stride=16)
    assert dilated.params == plain.params
    assert dilated.stages[4].output_shape == [2048, 14, 14]
    assert dilated.stages[4].macs == 4 * plain.stages[4].macs  # 14x14 positions instead of 7x7


def test_summary_of_a_real_model_leaves_it_untouched() -> None:
    from resnet import create_model

    model = create_model("resnet20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = summarize(model, (32, 32), name="resnet20")
    assert s.params == 269_722 and s.macs == model_summary("resnet20").macs
    assert model.training and model.conv1.weight.device.type == "cpu"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_summary_json_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet50", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 25_557_032
    assert abs(data["macs"] - 3.8e9) / 3.8e9 < 0.03
    assert main(["summary", "resnet20", "--input-size", "64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_size"] == [64, 64] and data["stages"][1]["output_shape"] == [16, 64, 64]


def test_summary_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet5"]) == 2
    assert "unknown model 'resnet5'" in capsys.readouterr().err
    assert main(["summary", "resnet50", "--input-size", "8", "9", "10"]) == 2
    assert "--input-size takes one or two positive integers" in capsys.readouterr().err
    assert main(["summary"]) == 2
    assert "needs a model name" in capsys.readouterr().err


def test_table1_lists_the_paper_structure() -> None:
    text = table1()
    assert "| conv4_x | 14x14 |" in text
    assert "[1x1, 256; 3x3, 256; 1x1, 1024] x 36" in text
    assert "| FLOPs |  | 1.8x10^9 |" in text


def test_readme_model_table_is_the_tools_output() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    match = re.search(r"<!-- models-table -->\n(.*?)\n<!-- /models-table -->", readme, re.S)
    assert match, "README.md lost its generated models table"
    assert match.group(1).strip() == all_models_table().strip()
