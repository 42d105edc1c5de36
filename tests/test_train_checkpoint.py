"""Checkpoints: exact round trip of weights and training state, atomic writes, foreign files."""

from __future__ import annotations

import errno
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from resnet import atomic_files
from resnet import checkpoints as ck
from resnet.errors import ResNetError

# The smallest meta the loader accepts (see resnet.checkpoints.meta): a network, its classes, normalisation.
META = {
    "model": "resnet20",
    "model_options": {"num_classes": 3},
    "classes": ["a", "b", "c"],
    "normalization": {"mode": "none"},
}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(36, 3))


def _trained() -> tuple[nn.Module, torch.optim.Optimizer]:
    net = _net()
    net(torch.randn(2, 1, 5, 5))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(4, 1, 5, 5)).sum().backward()
    opt.step()
    return net, opt


def test_round_trip_is_exact(tmp_path):
    net, opt = _trained()
    state = {
        "optimizer": opt.state_dict(),
        "step": 7,
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": [int(x) for x in np.random.get_state()[1][:5]],
        },
        "best": None,
        "loss": float("inf"),
    }
    path = tmp_path / "last.safetensors"
    ck.save_checkpoint(path, META, net.state_dict(), state=state)
    got = ck.load_checkpoint(tmp_path)  # a folder resolves to its checkpoint
    assert got.meta == META
    assert all(torch.equal(got.model[k], v) for k, v in net.state_dict().items())
    assert got.state["rng"]["python"] == random.getstate()  # tuples survive
    assert torch.equal(got.state["rng"]["torch"], torch.get_rng_state())
    assert got.state["step"] == 7 and got.state["loss"] == float("inf")
    opt2 = torch.optim.SGD(_net().parameters(), lr=0.5, momentum=0.9)
    opt2.load_state_dict(got.state["optimizer"])  # int-keyed optimizer state survives
    assert torch.equal(
        opt2.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"]
    )


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    net, _ = _trained()
    path = tmp_path / "last.safetensors"
    ck.save_checkpoint(path, {**META, "step": 1}, net.state_dict())

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "write", full)
    with pytest.raises(ResNetError, match="last.safetensors: disk full; the previous file is kept"):
        ck.save_checkpoint(path, {**META, "step": 2}, net.state_dict())
    monkeypatch.undo()
    assert ck.load_checkpoint(path).meta == {**META, "step": 1}
    assert os.listdir(tmp_path) == ["last.safetensors"]  # no temp file left behind


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ResNetError, match="cannot write .*file/last.safetensors"):
        ck.save_checkpoint(blocker / "last.safetensors", {}, _net().state_dict())


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_foreign_torch_files_load(tmp_path, wrap):
    net, _ = _trained()
    sd = net.state_dict()
    obj = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd, "optimizer": {}},
        "module_prefix": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    }[wrap]
    torch.save(obj, tmp_path / "w.pth")
    fresh = _net()
    fresh(torch.randn(2, 1, 5, 5))
    ck.load_weights(fresh, tmp_path / "w.pth")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in sd.items())


def test_key_mismatch_lists_missing_and_unexpected(tmp_path):
    net, _ = _trained()
    sd = {("renamed." + k if k.startswith("0.") else k): v for k, v in net.state_dict().items()}
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(ResNetError, match=r"missing keys: 0.weight, 0.bias; unexpected keys: renamed.0.weight"):
        ck.load_weights(_trained()[0], tmp_path / "w.pth")


def test_pickled_code_is_refused(tmp_path):
    torch.save({"state_dict": _net().state_dict(), "extra": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ResNetError, match="only tensors are accepted"):
        ck.read_state_dict(tmp_path / "evil.pth")


class _Payload:
    pass


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "last.safetensors").write_bytes(b"garbage")
    with pytest.raises(ResNetError, match="not a readable safetensors checkpoint"):
        ck.load_checkpoint(tmp_path / "last.safetensors")
