"""torch.hub loads this repository's hubconf.py: every network, with create_model's keywords and weights."""

from __future__ import annotations

from pathlib import Path

import torch

import resnet
from resnet.weights import published
from test_weights import DATA, STATE, _closed_port_url, _entry, cache  # noqa: F401 (the weights cache fixture)

ROOT = Path(__file__).resolve().parents[1]


def test_every_network_is_an_entry_point_and_nothing_else():
    # What torch.hub.list reports for a repository: the public callables of its hubconf.
    hubconf = torch.hub._import_module("hubconf", str(ROOT / "hubconf.py"))
    entry_points = {n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")}
    assert entry_points == set(resnet.list_models())
    assert hubconf.resnet50.__doc__.startswith("ResNet-50 (Table 1)")


def test_entry_points_take_create_models_keywords():
    torch.manual_seed(0)
    hub = torch.hub.load(str(ROOT), "resnet56", source="local", num_classes=100, shortcut="B")
    torch.manual_seed(0)
    direct = resnet.create_model("resnet56", num_classes=100, shortcut="B")
    assert hub.state_dict().keys() == direct.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(hub.state_dict().values(), direct.state_dict().values()))
    assert hub(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_published_weights_through_the_hub_without_network(cache, tmp_path, monkeypatch):  # noqa: F811
    entry = _entry(_closed_port_url())  # nothing listens: only the cached file can serve
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"  # where torch.hub itself keeps downloads
    checkpoints.mkdir(parents=True)
    (checkpoints / entry.file).write_bytes(DATA)
    model = torch.hub.load(str(ROOT), "resnet20", source="local", weights="torchvision")
    state = model.state_dict()
    assert all(torch.equal(state[k], STATE[k]) for k in STATE)
