"""Results that used to pass silently: diverged networks, clipped 16-bit images, ambiguous options,
refused harmless CIFAR files, exports without class names, report values shown as JSON."""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import TINY_TRAIN, make_cifar
from resnet import create_model
from resnet.checkpoints import BEST, save_checkpoint
from resnet.data import Normalization
from resnet.data.cifar import read_cifar
from resnet.data.images import decode_rgb
from resnet.data.safe_pickle import safe_load
from resnet.errors import ResNetError
from resnet.train import resolve

SRC = str(Path(__file__).resolve().parents[1] / "src")
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


def _explode(model: nn.Module) -> None:
    """Finite but enormous convolution weights (5e19): activations overflow to inf, scores become NaN."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(5e19)


def _checkpoint(path: Path, classes: list[str], model: nn.Module | None = None) -> Path:
    """A resnet checkpoint of a CIFAR ResNet-8 with channel normalisation, written without training."""
    torch.manual_seed(0)
    model = model or create_model("cifar_resnet", depth=8, num_classes=len(classes))
    norm = Normalization("channel", torch.tensor([125.0, 123.0, 114.0]), torch.tensor([63.0, 62.0, 66.0]))
    meta = {
        "model": "cifar_resnet",
        "model_options": {"num_classes": len(classes), "in_channels": 3, "depth": 8},
        "classes": classes,
        "normalization": norm.to_dict(),
        "image_size": [32, 32],
        "val_protocol": "single",
        "eval_protocol": "single",
        "data": {"name": "cifar10", "data_dir": None, "val_split": 5000, "split_seed": 0, "cache_dir": None},
        "eval_weights": "model",
        "step": 0,
        "epoch": 0.0,
    }
    save_checkpoint(path, meta, model.state_dict())
    return path


# -- non-finite results ----------------------------------------------------------------------------


def test_validation_with_nan_outputs_stops_and_saves_no_best(tmp_path):
    from resnet.train.trainer import Trainer

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trainer = Trainer(resolve({**TINY_TRAIN, "iterations": 2, "run_dir": str(run_dir)}), run_dir)
    trainer.step = 7
    _explode(trainer.model)
    assert all(bool(torch.isfinite(t).all()) for t in trainer.model.state_dict().values() if t.is_floating_point())
    with pytest.raises(ResNetError, match="validation at step 7: .*NaN or infinite.*no checkpoint was saved"):
        trainer._validate(None)
    assert not (run_dir / BEST).exists() and trainer.best is None


def test_predict_refuses_nan_scores(tmp_path):
    from resnet.evaluate import model_from_checkpoint
    from resnet.predict import predict

    model = create_model("cifar_resnet", depth=8, num_classes=3)
    _explode(model)
    path = _checkpoint(tmp_path / "big.safetensors", ["a", "b", "c"], model)
    net, meta = model_from_checkpoint(path)  # finite weights: loading is fine, the outputs are not
    image = tmp_path / "x.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(image)
    with pytest.raises(ResNetError, match=f"image {image}: .*NaN or infinite"):
        predict(net, meta, [image])


# -- images, CIFAR files, options -------------------------------------------------------------------


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 257, 32896], [65535, 1000, 65280]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(grey).save(path)
    rgb = decode_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[..., 0].tolist() == [[0, 1, 128], [255, 4, 254]]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_cifar_repickled_by_python3_is_read(tmp_path):
    folder = make_cifar(tmp_path / "py2")
    original = read_cifar("cifar10", folder)
    again = tmp_path / "py3" / folder.name
    again.mkdir(parents=True)
    for f in folder.iterdir():  # our own test files: trusted, so the full unpickler may read them
        obj = pickle.loads(f.read_bytes(), encoding="bytes")
        (again / f.name).write_bytes(pickle.dumps(obj, protocol=2))
    assert b"_codecs" in (again / "data_batch_1").read_bytes()
    repickled = read_cifar("cifar10", again)
    assert repickled.classes == original.classes
    assert torch.equal(repickled.train.images, original.train.images)
    assert torch.equal(repickled.train.labels, original.train.labels)


def test_codecs_encode_is_admitted_only_for_latin1_strings():
    def call(encoding: str) -> bytes:  # pickle of _codecs.encode("abc", encoding), protocol 2
        return (
            b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX"
            + len(encoding).to_bytes(4, "little")
            + encoding.encode()
            + b"\x86R."
        )

    assert safe_load(call("latin1"), "f") == b"abc"
    with pytest.raises(ResNetError, match="f: unsafe pickle"):
        safe_load(call("rot13"), "f")


def test_val_split_counts_and_fractions_are_unambiguous(tmp_path):
    assert resolve({"val_split": "1"}).val_split == 1 and isinstance(resolve({"val_split": "1"}).val_split, int)
    assert resolve({"val_split": "0.25"}).val_split == 0.25
    assert isinstance(resolve({"val_split": 5000.0}).val_split, int)
    with pytest.raises(ResNetError, match="val-split.*1.0 is ambiguous"):
        resolve({"val_split": "1.0"})
    cfg = resolve({"recipe": "cifar-paper", "data_dir": "x"})
    from resnet.train.config import save_json

    save_json(cfg, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["val_split"] == 5000  # not 5000.0


# -- export: metadata, one message -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    ["torchscript", pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="onnx extra not installed"))],
)
def test_export_stores_classes_and_normalisation(tmp_path, fmt):
    path = _checkpoint(tmp_path / "m.safetensors", ["cat", "dog", "eel"])
    out = tmp_path / ("m.pt" if fmt == "torchscript" else "m.onnx")
    p = subprocess.run(
        [sys.executable, "-m", "resnet", "export", str(path), "--format", fmt, "--output", str(out)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC, "PATH": ""},
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert (p.stdout + p.stderr).count(str(out)) == 1  # the success message once, not again in the log
    # Read back the way docs/speed.md tells a deployment to: with torch / onnx alone.
    if fmt == "torchscript":
        extra = {"classes": "", "normalization": "", "input": ""}
        torch.jit.load(str(out), _extra_files=extra)
    else:
        import onnx

        extra = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(extra["classes"]) == ["cat", "dog", "eel"]
    norm = json.loads(extra["normalization"])
    assert norm["mode"] == "channel" and norm["mean"] == [125.0, 123.0, 114.0] and norm["std"] == [63.0, 62.0, 66.0]
    assert json.loads(extra["input"])["layout"] == "NCHW" and json.loads(extra["input"])["height"] == 32
    from resnet.export import read_metadata

    assert read_metadata(out) == {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}


# -- report --------------------------------------------------------------------------------------------


def test_report_shows_plain_values_and_draws_single_points(tmp_path, monkeypatch):
    import resnet.plots as plots
    from resnet.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"model": "resnet20", "depth": None, "val_split": 5000.0, "lr": 0.1, "epochs": 15.0})
    )
    (run / "metrics.jsonl").write_text(
        json.dumps({"kind": "val", "step": 10, "epoch": 1, "val_error": 0.4, "val_top5_error": 0.1, "val_loss": 1.0})
        + "\n"
    )
    lines = []
    save = plots._save

    def keep_lines(fig, path):
        lines.extend(line for ax in fig.axes for line in ax.get_lines())
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep_lines)
    _, md = write_report([run], tmp_path / "report")
    text = md.read_text()
    for row in ("| model | resnet20 |", "| depth | none |", "| val_split | 5000 |", "| lr | 0.1 |", "| epochs | 15 |"):
        assert row in text.replace("  ", " ")
    assert '"resnet20"' not in text and "null" not in text and "5000.0" not in text
    one_point = [ln for ln in lines if len(ln.get_xdata()) == 1]
    assert one_point and all(ln.get_marker() not in (None, "None", "", " ") for ln in one_point)
