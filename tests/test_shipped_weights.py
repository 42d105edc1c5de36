"""Networks trained by this project and shipped in the package: loaded by name, hash-checked.

A stand-in shipped network (a tiny digits run, saved as ship_weights.py saves one) tests the routes
by name; the real shipped files are checked against their pinned digests and model cards.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet import create_model
from resnet.checkpoints import LAST, load_checkpoint, save_checkpoint
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.evaluate import model_from_checkpoint
from resnet.weights import shipped as S

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stand_in(trained_run, tmp_path, monkeypatch):
    """``cifar_resnet.digits``: the tiny run's weights shipped into a stand-in package folder."""
    last = load_checkpoint(trained_run / LAST)
    monkeypatch.setattr(S, "TRAINED", tmp_path / "trained")
    entry = S.ShippedWeights("cifar_resnet", "digits", "", 1.0, 2.0, "digits")
    entry.path.parent.mkdir()
    meta = {k: v for k, v in last.meta.items() if k not in ("step", "epoch")}
    save_checkpoint(entry.path, {**meta, "weights": entry.name}, last.model)
    pinned = S.ShippedWeights(**{**entry.__dict__, "sha256": hashlib.sha256(entry.path.read_bytes()).hexdigest()})
    monkeypatch.setattr(S, "SHIPPED", (pinned,))
    return pinned, last


def test_a_shipped_network_loads_by_name_everywhere(stand_in, tmp_path, capsys):
    entry, last = stand_in
    for net in (
        create_model("cifar_resnet", weights="digits"),
        create_model("cifar_resnet", weights="cifar_resnet.digits"),
        model_from_checkpoint("cifar_resnet.digits")[0],
    ):
        state = net.state_dict()
        assert all(torch.equal(state[k], v) for k, v in last.model.items())
    assert main(["eval", "cifar_resnet.digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 359 and 0 <= result["top1_error"] < 0.5
    assert main(["weights"]) == 0
    listing = capsys.readouterr().out
    assert "trained by this project and shipped in the package" in listing and "cifar_resnet  digits" in listing
    with pytest.raises(ResNetError, match="weights cifar_resnet.digits are for cifar_resnet, not resnet20"):
        create_model("resnet20", weights="cifar_resnet.digits")


def test_a_shipped_name_wins_over_a_folder_of_that_name(stand_in, tmp_path, monkeypatch):
    entry, last = stand_in
    (tmp_path / "digits").mkdir()
    (tmp_path / "cifar_resnet.digits").mkdir()
    monkeypatch.chdir(tmp_path)
    assert torch.equal(
        create_model("cifar_resnet", weights="digits").state_dict()["fc.weight"], last.model["fc.weight"]
    )
    assert model_from_checkpoint("cifar_resnet.digits")[1]["weights"] == "cifar_resnet.digits"
    with pytest.raises(ResNetError, match="holds no checkpoint"):  # a path is always a path
        model_from_checkpoint("./cifar_resnet.digits")


def test_fine_tuning_from_a_shipped_network(stand_in, tmp_path):
    from conftest import TINY_TRAIN
    from resnet.train import resolve, train

    run = tmp_path / "run"
    result = train(resolve({**TINY_TRAIN, "iterations": 2, "init": "cifar_resnet.digits", "run_dir": str(run)}))
    init = json.loads((run / "config.json").read_text())["resolved"]["init"]
    assert init["kind"] == "shipped" and init["path"] == str(stand_in[0].path.resolve())
    assert result.summary["iterations"] == 2


def test_a_damaged_shipped_file_is_one_line(stand_in):
    entry, _ = stand_in
    data = bytearray(entry.path.read_bytes())
    data[-1] ^= 1
    entry.path.write_bytes(bytes(data))
    with pytest.raises(ResNetError, match=r"^cifar_resnet.digits: .* has SHA-256 [0-9a-f]{16}\.\.\., not the pinned"):
        create_model("cifar_resnet", weights="digits")
    with pytest.raises(ResNetError, match="reinstall the package"):
        model_from_checkpoint("cifar_resnet.digits")


@pytest.mark.parametrize("entry", S.SHIPPED, ids=lambda e: e.name)
def test_each_shipped_file_is_its_pinned_digest_and_its_card_holds(entry):
    assert hashlib.sha256(entry.path.read_bytes()).hexdigest() == entry.sha256
    net = create_model(entry.model, weights=entry.tag)
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    card = entry.card.read_text()
    for claim in (f"**{entry.val_error:.2f}%**", f"| validation error, single view | {entry.val_error_single:.2f}% |"):
        assert claim in card
    assert "`resnet train " in card and "commit" in card and "not measured" in card
    meta = load_checkpoint(entry.path).meta
    assert meta["weights"] == entry.name and meta["data"]["data_dir"] is None


def test_the_package_ships_its_trained_files():
    """The wheel holds the shipped files and their cards (package data)."""
    text = (ROOT / "pyproject.toml").read_text()
    assert 'resnet = ["weights/trained/*.safetensors", "weights/trained/*.md"]' in text


CIFAR = ROOT.parent / "shared" / "data" / "cifar10-train-jpg.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR.is_file(), reason=f"{CIFAR} is not here")
@pytest.mark.parametrize("entry", S.SHIPPED, ids=lambda e: e.name)
def test_a_shipped_network_scores_its_model_card_on_the_validation_images(entry, tmp_path):
    """The card's single-view error, again, on the 5,000 held-out JPEGs (fp32 here: within 0.1 point of
    the card's bf16 figure, which CPUs may round differently)."""
    subprocess.run(["tar", "-xzf", str(CIFAR), "-C", str(tmp_path)], check=True)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "resnet",
            "eval",
            entry.name,
            "--data-dir",
            str(tmp_path / "cifar10-jpg" / "train"),
            "--split",
            "val",
            "--precision",
            "fp32",
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"RESNET_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"},
    )
    result = json.loads(out.stdout)
    assert result["images"] == 5000
    assert abs(100 * result["top1_error"] - entry.val_error_single) <= 0.1
