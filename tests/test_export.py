"""Exported TorchScript / ONNX networks give the eager outputs; `resnet export` writes and checks them."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from resnet import create_model
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.export import OnnxRuntimeModel, check_against_eager, export_model

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(
    not HAS_ONNX, reason="onnx, onnxscript and onnxruntime are not installed (pip install -e '.[export]')"
)


def _model(name="resnet20", **options) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(name, **options).train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        for _ in range(2):
            model(torch.randn(8, 3, 32, 32))
    return model.eval()


@pytest.mark.parametrize("options", [{}, {"shortcut": "B"}], ids=["A", "B"])
def test_torchscript_equals_eager_at_another_batch_size(tmp_path, options):
    model = _model(**options)
    result = export_model(model, tmp_path / "m.pt", "torchscript", (3, 32, 32))
    assert result.max_abs_diff < 1e-4
    loaded = torch.jit.load(str(result.path))
    x = torch.randn(7, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), rtol=1e-4, atol=1e-4)


@needs_onnx
@pytest.mark.parametrize("name", ["resnet20", "preact_resnet20"])
def test_onnx_runtime_equals_eager(tmp_path, name):
    model = _model(name)
    result = export_model(model, tmp_path / "m.onnx", "onnx", (3, 32, 32))
    ort_model = OnnxRuntimeModel(result.path)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ort_model(x), model(x), rtol=1e-4, atol=1e-4)


def test_a_mismatching_export_is_rejected():
    model = _model()
    with pytest.raises(ResNetError, match="differs from eager"):
        check_against_eager(lambda x: model(x) + 1e-2, model, (3, 32, 32))
    with pytest.raises(ResNetError, match="shape"):
        check_against_eager(lambda x: model(x)[:1], model, (3, 32, 32))


def test_unknown_format_and_missing_folder_are_user_errors(tmp_path):
    with pytest.raises(ResNetError, match="--format"):
        export_model(_model(), tmp_path / "m.x", "tflite", (3, 32, 32))
    with pytest.raises(ResNetError, match="does not exist"):
        export_model(_model(), tmp_path / "no" / "m.pt", "torchscript", (3, 32, 32))


def _checkpoint(tmp_path, model):
    from resnet.checkpoints import save_checkpoint

    path = tmp_path / "best.safetensors"
    meta = {
        "model": "resnet20",
        "model_options": {"num_classes": 10, "in_channels": 3},
        "classes": [str(i) for i in range(10)],
        "normalization": {"mode": "none"},
        "image_size": [32, 32],
        "eval_weights": "model",
    }
    save_checkpoint(path, meta, model.state_dict())
    return path


def test_cli_export_torchscript_from_checkpoint(tmp_path, capsys):
    model = _model()
    path = _checkpoint(tmp_path, model)
    assert main(["export", str(path), "--format", "torchscript"]) == 0
    out = tmp_path / "best.pt"
    assert out.is_file() and "max |diff|" in capsys.readouterr().out
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(out))(x), model(x), rtol=1e-4, atol=1e-4)


@needs_onnx
def test_cli_export_onnx_to_chosen_path(tmp_path):
    model = _model()
    path = _checkpoint(tmp_path, model)
    out = tmp_path / "exported.onnx"
    assert main(["export", str(path), "--format", "onnx", "--output", str(out)]) == 0
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(OnnxRuntimeModel(out)(x), model(x), rtol=1e-4, atol=1e-4)


def test_cli_export_missing_checkpoint_exits_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.safetensors"), "--format", "torchscript"]) == 2
    assert "resnet: error:" in capsys.readouterr().err


def _read_only(monkeypatch, folder):
    """The folder refuses new files, as chmod 0o500 does for anyone but root (we may run as root)."""
    import errno
    import os

    real_open = os.open

    def guarded(path, *args, **kwargs):
        if os.path.dirname(os.fspath(path)) == str(folder) and args and args[0] & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


def _disk_full(monkeypatch, folder):
    """Half of the bytes reach the disk, then ENOSPC."""
    import errno
    import os

    import resnet.atomic_files

    def half_then_full(fd, data):
        os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resnet.atomic_files, "_write_all", half_then_full)


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=needs_onnx)])
@pytest.mark.parametrize(("fault", "why"), [(_read_only, "Permission denied"), (_disk_full, "disk full")])
@pytest.mark.parametrize("previous", [False, True], ids=["new", "over-previous"])
def test_export_that_cannot_be_written_is_one_line_and_leaves_no_torn_file(
    tmp_path, capsys, monkeypatch, fmt, fault, why, previous
):
    path = _checkpoint(tmp_path, _model())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / f"m{'.pt' if fmt == 'torchscript' else '.onnx'}"
    if previous:
        out.write_bytes(b"the previous export")
    fault(monkeypatch, out_dir)
    assert main(["export", str(path), "--format", fmt, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    kept = "; the previous file is kept" if previous else ""
    assert err == f"resnet: error: cannot write {out}: {why}{kept}"
    assert [p.name for p in out_dir.iterdir()] == ([out.name] if previous else [])
    if previous:
        assert out.read_bytes() == b"the previous export"
