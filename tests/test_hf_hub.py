"""Hugging Face Hub names load offline from a cache laid out as huggingface_hub lays it out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import resnet
from conftest import TIMM_CFG as CFG_05

pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _lay_out(cache: Path, repo: str, config: dict | None, state: dict[str, torch.Tensor] | None) -> None:
    """``<cache>/models--OWNER--NAME/{refs/main, snapshots/COMMIT/...}``, as huggingface_hub writes it."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    if config is not None:
        (snapshot / "config.json").write_text(json.dumps(config))
    if state is not None:
        save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))


def _run(cache: Path, code: str) -> subprocess.CompletedProcess:
    """In a fresh process: huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE when it is imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    # timm's layout is torchvision's: stride on the 3x3 of a downsampling bottleneck.
    return resnet.create_model("resnet50", stride_on="3x3", num_classes=10).state_dict()


def test_a_timm_repository_loads_with_its_own_normalisation_and_settings(tmp_path, weights):
    config = {
        "architecture": "resnet50",
        "num_classes": 10,
        "label_names": [f"c{i}" for i in range(10)],
        "pretrained_cfg": CFG_05,
    }
    _lay_out(tmp_path, "timm/resnet50.test_in1k", config, weights)
    out = tmp_path / "loaded.pt"
    done = _run(
        tmp_path,
        f"""
import torch, resnet
from resnet.weights.load import model_from_weights
model = resnet.create_model("hf-hub:timm/resnet50.test_in1k")
_, meta = model_from_weights("resnet50", "hf-hub:timm/resnet50.test_in1k")
torch.save({{"state": model.state_dict(), "meta": meta, "stride": model.layer2[0].conv2.stride}}, {str(out)!r})
""",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    saved = torch.load(out, weights_only=False)
    assert all(torch.equal(saved["state"][k], weights[k]) for k in weights)
    assert saved["stride"] == (2, 2)  # built as the weights need it
    meta = saved["meta"]
    assert meta["classes"] == [f"c{i}" for i in range(10)] and meta["model_options"]["num_classes"] == 10
    assert meta["normalization"] == {"mode": "channel", "mean": [127.5] * 3, "std": [127.5] * 3}  # 0.5, not ImageNet's
    assert meta["pretrained_cfg"] == CFG_05 and meta["weights"] == "hf-hub:timm/resnet50.test_in1k"
    # timm's test view: resize to floor(224 / 0.95) = 235, centre 224, bicubic
    assert meta["eval_view"] == {"resize": 235, "crop": 224, "interpolation": "bicubic"}


@pytest.mark.parametrize(
    ("repo", "config", "with_weights", "expected"),
    [
        ("timm/missing", None, False, "config.json is not in the local Hugging Face cache"),
        ("timm/deep", {"architecture": "resnet50d", "pretrained_cfg": CFG_05}, True, "'resnet50d' is not one of"),
        (
            "timm/nomean",
            {"architecture": "resnet50", "num_classes": 10, "pretrained_cfg": {"crop_pct": 0.95}},
            True,
            "no valid pretrained_cfg mean and std",
        ),
        (
            "timm/noweights",
            {"architecture": "resnet50", "num_classes": 10, "pretrained_cfg": CFG_05},
            False,
            "model.safetensors or pytorch_model.bin is not in the local Hugging Face cache",
        ),
        ("notarepo", None, False, "a Hub name is hf-hub:OWNER/REPO"),
    ],
)
def test_what_cannot_load_is_one_line(tmp_path, weights, repo, config, with_weights, expected):
    if repo != "timm/missing" and "/" in repo:
        _lay_out(tmp_path, repo, config, weights if with_weights else None)
    done = _run(
        tmp_path,
        f"""
import resnet
from resnet.errors import ResNetError
try:
    resnet.create_model("hf-hub:{repo}")
except ResNetError as e:
    print(e)
""",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip()
    assert "\n" not in line and expected in line, line


def test_an_exported_run_loads_back_from_the_hub_route(trained_run, tmp_path, capsys):
    """`resnet export RUN --format hf` -> the folder as a Hub repository -> create_model("hf-hub:...")."""
    from resnet.cli import main
    from resnet.evaluate import model_from_checkpoint

    folder = tmp_path / "export-hf"
    assert main(["export", str(trained_run), "--format", "hf", "--output", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert main(["export", str(trained_run), "--format", "hf", "--output", str(folder)]) == 2  # never overwritten
    assert "is not an empty folder" in capsys.readouterr().err
    config = json.loads((folder / "config.json").read_text())
    cache = tmp_path / "hub"
    _lay_out(cache, "me/tiny", config, None)
    snapshot = cache / "models--me--tiny" / "snapshots" / COMMIT
    (snapshot / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    out = tmp_path / "loaded.pt"
    done = _run(
        cache,
        f"""
import torch, resnet
from resnet.weights.load import model_from_weights
model, meta = model_from_weights("{config["architecture"]}", "hf-hub:me/tiny")
x = torch.rand(4, meta["model_options"].get("in_channels", 3), 8, 8) * 255
from resnet.data.normalization import Normalization
logits = model(Normalization.from_dict(meta["normalization"]).apply(x))
torch.save({{"logits": logits, "x": x, "meta": meta}}, {str(out)!r})
""",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    saved = torch.load(out, weights_only=False)
    original, meta = model_from_checkpoint(trained_run)
    from resnet.data.normalization import Normalization

    with torch.no_grad():
        want = original(Normalization.from_dict(meta["normalization"]).apply(saved["x"]))
    torch.testing.assert_close(saved["logits"], want, rtol=0, atol=0)  # same weights, options, normalisation
    got = saved["meta"]
    assert got["classes"] == meta["classes"] and got["normalization"] == meta["normalization"]
    assert got["model_options"] == meta["model_options"] and got["image_size"] == meta["image_size"]


def test_init_from_a_hub_name_fine_tunes_its_network(trained_run, tmp_path):
    """`resnet train --init hf-hub:OWNER/REPO`: the Hub weights as the start of a run, offline."""
    from resnet.cli import main

    folder = tmp_path / "export-hf"
    assert main(["export", str(trained_run), "--format", "hf", "--output", str(folder)]) == 0
    cache = tmp_path / "hub"
    _lay_out(cache, "me/tiny", json.loads((folder / "config.json").read_text()), None)
    snapshot = cache / "models--me--tiny" / "snapshots" / COMMIT
    (snapshot / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    run = tmp_path / "tuned"
    done = _run(
        cache,
        f"""
import sys
from resnet.cli import main
sys.exit(main(["train", "--recipe", "finetune", "--init", "hf-hub:me/tiny", "--model", "cifar_resnet", "--depth", "8",
               "--data", "digits", "--iterations", "2", "--batch-size", "16", "--quiet", "--run-dir", {str(run)!r}]))
""",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    resolved = json.loads((run / "config.json").read_text())["resolved"]["init"]
    assert resolved["source"] == "hf-hub:me/tiny" and resolved["loaded"] > 0
    wrong = _run(
        cache,
        """
from resnet.train.warm_start import resolve_init
from resnet.errors import ResNetError
try:
    resolve_init("hf-hub:me/tiny", "resnet50")
except ResNetError as e:
    print(e)
""",
    )
    assert "its weights are for cifar_resnet, not resnet50" in wrong.stdout, wrong.stderr[-2000:]
