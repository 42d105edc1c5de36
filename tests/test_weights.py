"""Pretrained weights: the published table, downloads against a local server, loading and its errors.

Nothing here touches the real network: a stand-in entry (a CIFAR ResNet-20 with a 1000-way classifier,
saved with torch.save and named after its own SHA-256 prefix, as torchvision names its files) is
served from 127.0.0.1 and swapped into the table.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import resnet
from conftest import TIMM_CFG
from resnet.cli import main
from resnet.data.images import decode_tensor
from resnet.data.transforms import center_view
from resnet.errors import ResNetError
from resnet.models.blocks import Bottleneck
from resnet.weights import (
    IMAGENET_CLASSES,
    fetch,
    find_by_name,
    imagenet_normalization,
    list_published,
    load_published,
    model_from_weights,
    published,
)
from resnet.weights.published import PUBLISHED, PublishedWeights
from resnet.weights.shipped import list_shipped
from test_data_download import Server, server  # noqa: F401 (the local HTTP server fixture)
from test_models import FIXTURE

MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d")


# --- the table ----------------------------------------------------------------------------------


def test_every_file_name_carries_an_8_hex_sha256_prefix() -> None:
    for w in PUBLISHED:
        assert w.url == f"https://download.pytorch.org/models/{w.file}"
        assert re.fullmatch(rf"{w.model}-[0-9a-f]{{8}}\.pth", w.file), w.file
        assert w.sha256_prefix == w.file[-12:-4]
    assert len({w.name for w in PUBLISHED}) == len({w.file for w in PUBLISHED}) == len(PUBLISHED) == 12
    # The two files torchvision documents for ResNet-50: IMAGENET1K_V1 and IMAGENET1K_V2.
    assert find_by_name("resnet50.torchvision").file == "resnet50-0676ba61.pth"
    assert find_by_name("resnet50.torchvision-v2").file == "resnet50-11ad3fa6.pth"


def test_every_network_has_v1_and_the_bottleneck_ones_v2() -> None:
    assert {w.model for w in PUBLISHED} == set(MODELS)
    for model in MODELS:
        tags = [w.tag for w in list_published(model)]
        assert tags == (["torchvision"] if model in ("resnet18", "resnet34") else ["torchvision", "torchvision-v2"])
    for w in PUBLISHED:
        assert w.resize == (256 if w.tag == "torchvision" else 232)
        if w.tag == "torchvision-v2":  # the newer recipe is the better one, for every network
            v1 = find_by_name(f"{w.model}.torchvision")
            assert w.acc1 > v1.acc1 and w.acc5 > v1.acc5 and w.params == v1.params


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda w: w.name)
def test_each_entry_builds_the_network_its_weights_were_trained_as(entry: PublishedWeights) -> None:
    with torch.device("meta"):
        model = resnet.create_model(entry.model, **entry.options)
    assert sum(p.numel() for p in model.parameters()) == entry.params  # torchvision's published count
    first = model.layer2[0]
    if isinstance(first, Bottleneck):  # torchvision's "v1.5": the stride sits on the 3x3
        assert entry.options == {"stride_on": "3x3"}
        assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    else:
        assert entry.options == {}
    if entry.model in FIXTURE:  # key names and shapes recorded from torchvision
        assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == FIXTURE[entry.model]


def test_normalisation_is_torchvisions_on_the_0_to_1_scale() -> None:
    x = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    norm = imagenet_normalization()
    assert norm.mode == "channel"
    torch.testing.assert_close(norm.apply(x), (x.float() / 255 - mean) / std, rtol=1e-5, atol=1e-5)
    again = type(norm).from_dict(json.loads(json.dumps(norm.to_dict())))  # survives a checkpoint header
    torch.testing.assert_close(again.apply(x), norm.apply(x))


def test_imagenet_class_names_in_class_index_order() -> None:
    assert len(IMAGENET_CLASSES) == len(set(IMAGENET_CLASSES)) == 1000
    # Imagenette's ten WordNet ids sit at these ImageNet indices.
    imagenette = {
        0: "tench",
        217: "English springer",
        482: "cassette player",
        491: "chain saw",
        497: "church",
        566: "French horn",
        569: "garbage truck",
        571: "gas pump",
        574: "golf ball",
        701: "parachute",
    }
    assert {i: IMAGENET_CLASSES[i] for i in imagenette} == imagenette
    assert IMAGENET_CLASSES[999] == "toilet tissue"


# --- the stand-in and its server --------------------------------------------------------------------


def _stand_in_bytes() -> tuple[bytes, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    state = resnet.create_model("resnet20", num_classes=1000).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue(), state


DATA, STATE = _stand_in_bytes()
SHA8 = hashlib.sha256(DATA).hexdigest()[:8]


def _entry(base: str, prefix: str = SHA8) -> PublishedWeights:
    return PublishedWeights(
        "resnet20",
        "torchvision",
        f"{base}/resnet20-{prefix}.pth",
        50.0,
        75.0,
        sum(v.numel() for k, v in STATE.items() if "running" not in k and "num_batches" not in k),
        len(DATA) / 1e6,
        256,
        "https://example.invalid/recipe",
        {"num_classes": 1000},
    )


def _closed_port_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RESNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "cache" / "weights"


def _serve(server: Server, monkeypatch, prefix: str = SHA8) -> PublishedWeights:
    entry = _entry(server.url, prefix)
    server.files[f"/{entry.file}"] = DATA
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    return entry


def _assert_state(state: dict[str, torch.Tensor]) -> None:
    assert state.keys() == STATE.keys()
    assert all(torch.equal(state[k], STATE[k]) for k in STATE)


# --- fetching ------------------------------------------------------------------------------------


def test_download_then_the_cached_file_needs_no_network(server, cache, monkeypatch) -> None:
    entry = _serve(server, monkeypatch)
    state, info = load_published("torchvision", "resnet20")
    _assert_state(state)
    assert info.source == cache / entry.file and info.source.read_bytes() == DATA
    assert sorted(p.name for p in cache.iterdir()) == [entry.file]  # no .part left behind
    assert info.published == entry and info.classes == list(IMAGENET_CLASSES)
    assert info.normalization.mode == "channel" and info.stride_on is None
    server.httpd.shutdown()  # from now on the network is gone
    server.httpd.server_close()
    model = resnet.create_model("resnet20", weights="torchvision")
    _assert_state(model.state_dict())
    assert model.fc.out_features == 1000 and model.training  # built as the entry needs, like create_model
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(server, cache, monkeypatch) -> None:
    entry = _serve(server, monkeypatch)
    cut = len(DATA) // 3
    server.cut_next = cut
    with pytest.raises(ResNetError, match=rf"interrupted after {cut} bytes .*run again to resume"):
        fetch(entry)
    assert (cache / f"{entry.file}.part").stat().st_size == cut and not (cache / entry.file).exists()
    assert fetch(entry).read_bytes() == DATA
    assert server.requests == [None, f"bytes={cut}-"]
    assert not (cache / f"{entry.file}.part").exists()


def test_wrong_hash_is_one_line_and_the_file_is_removed(server, cache, monkeypatch) -> None:
    _serve(server, monkeypatch, prefix="0badc0de")
    with pytest.raises(
        ResNetError, match=r"is corrupt: SHA-256 [0-9a-f]{8}\.\.\., expected 0badc0de\.\.\.; deleted"
    ) as e:
        resnet.create_model("resnet20", weights="torchvision")
    assert "\n" not in str(e.value)
    assert list(cache.iterdir()) == []


def test_a_corrupt_cached_file_is_replaced(server, cache, monkeypatch) -> None:
    entry = _serve(server, monkeypatch)
    cache.mkdir(parents=True)
    (cache / entry.file).write_bytes(DATA[:1000])
    assert fetch(entry).read_bytes() == DATA


def test_offline_is_one_line_naming_the_url_and_where_to_put_the_file(cache, monkeypatch) -> None:
    entry = _entry(_closed_port_url())
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    with pytest.raises(ResNetError) as e:
        resnet.create_model("resnet20", weights="torchvision")
    message = str(e.value)
    assert "\n" not in message and entry.url in message and f"put it at {cache / entry.file}" in message
    assert not any(cache.iterdir())


def test_torch_hubs_copy_is_used_without_network(cache, tmp_path, monkeypatch) -> None:
    entry = _entry(_closed_port_url())
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / entry.file).write_bytes(DATA)
    state, info = load_published("resnet20.torchvision", "resnet20")
    _assert_state(state)
    assert info.source == hub / entry.file


def test_a_published_file_downloaded_by_hand_is_checked_and_used_offline(cache, tmp_path, monkeypatch) -> None:
    entry = _entry(_closed_port_url())
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    local = tmp_path / "by-hand" / entry.file
    local.parent.mkdir()
    local.write_bytes(DATA)
    state, info = load_published(str(local), "resnet20")
    _assert_state(state)
    assert info.published == entry and info.name == "resnet20.torchvision"
    local.write_bytes(DATA[:-1] + b"x")
    with pytest.raises(ResNetError, match=rf"is not resnet20\.torchvision's file: SHA-256 .*expected {SHA8}"):
        load_published(local, "resnet20")
    assert local.exists()  # the user's own file is never deleted


def test_pickled_code_in_a_weights_file_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "payload": Path("x")}, path)
    with pytest.raises(ResNetError, match="no pickled code"):
        resnet.create_model("resnet20", weights=path)


# --- other tools' files --------------------------------------------------------------------------


def _bottleneck_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return resnet.create_model("cifar_resnet", depth=11, block="bottleneck").state_dict()


def test_a_safetensors_file_with_torchvision_keys_loads_with_the_stride_on_the_3x3(tmp_path) -> None:
    state = {k: v for k, v in _bottleneck_state().items() if not k.endswith("num_batches_tracked")}
    save_file(state, tmp_path / "model.safetensors")  # as timm's hub files are
    model = resnet.create_model("cifar_resnet", weights=tmp_path / "model.safetensors", depth=11, block="bottleneck")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert model.layer2[0].conv1.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)
    # A guess about another tool's file gives way to an explicit option.
    paper = resnet.create_model(
        "cifar_resnet", weights=tmp_path / "model.safetensors", depth=11, block="bottleneck", stride_on="1x1"
    )
    assert paper.layer2[0].conv1.stride == (2, 2)


def test_weights_of_another_network_are_one_line_naming_keys_and_shapes(tmp_path) -> None:
    torch.save(_bottleneck_state(), tmp_path / "bottleneck.pth")
    with pytest.raises(ResNetError) as e:
        resnet.create_model("resnet20", weights=tmp_path / "bottleneck.pth")
    message = str(e.value)
    assert "\n" not in message and "do not fit resnet20" in message
    assert "unexpected keys: layer1.0.conv3.weight" in message
    assert "layer1.0.conv1.weight (16, 16, 1, 1) vs (16, 16, 3, 3)" in message


def test_a_deep_stem_file_names_its_keys_and_says_why(tmp_path) -> None:
    state = dict(STATE)
    state["conv1.0.weight"] = state.pop("conv1.weight")  # timm's resnet*d: conv1.0, conv1.1, conv1.3, ...
    state["conv1.1.weight"] = torch.ones(16)
    torch.save(state, tmp_path / "resnet20d.pth")
    with pytest.raises(
        ResNetError,
        match=r"missing keys: conv1\.weight; unexpected keys: conv1\.0\.weight, "
        r"conv1\.1\.weight; .*deep 3-convolution stem",
    ):
        resnet.create_model("resnet20", weights=tmp_path / "resnet20d.pth", num_classes=1000)


def test_a_classifier_of_another_size_says_so(tmp_path) -> None:
    torch.save(STATE, tmp_path / "w.pth")
    with pytest.raises(ResNetError, match=r"fc\.weight \(1000, 64\) vs \(10, 64\).*weights have 1000 classes"):
        resnet.create_model("resnet20", weights=tmp_path / "w.pth", num_classes=10)


def test_a_checkpoint_brings_its_own_options_classes_and_normalisation(trained_run) -> None:
    from resnet.checkpoints import load_checkpoint

    meta = load_checkpoint(trained_run / "best.safetensors").meta
    state, info = load_published(trained_run, meta["model"])
    assert info.classes == meta["classes"] and info.model_options == meta["model_options"]
    assert info.normalization.to_dict() == meta["normalization"]
    model = resnet.create_model(meta["model"], weights=trained_run)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(ResNetError, match=rf"is a {meta['model']} checkpoint, not resnet32"):
        resnet.create_model("resnet32", weights=trained_run)


# --- names and options ---------------------------------------------------------------------------


def test_wrong_names_are_one_line_with_the_valid_ones(cache) -> None:
    with pytest.raises(
        ResNetError,
        match=r"unknown weights 'torchvison' for resnet50 \(did you mean torchvision\?\); "
        r"valid: torchvision, torchvision-v2",
    ):
        resnet.create_model("resnet50", weights="torchvison")
    with pytest.raises(ResNetError, match=r"resnet18 has no torchvision-v2 weights; valid for resnet18: torchvision"):
        resnet.create_model("resnet18", weights="torchvision-v2")
    with pytest.raises(ResNetError, match=r"no published weights for resnet20; published: resnet18, resnet34, "):
        resnet.create_model("resnet20", weights="torchvision")
    with pytest.raises(ResNetError, match=r"did you mean resnet50\.torchvision"):
        find_by_name("resnet50.torchvison")
    with pytest.raises(ResNetError, match=r"weights file .*missing\.pth does not exist"):
        resnet.create_model("resnet50", weights="missing.pth")


def test_an_option_against_the_weights_fails_before_any_download(cache, monkeypatch) -> None:
    monkeypatch.setattr(published, "PUBLISHED", tuple(PUBLISHED))  # the real table, but no server anywhere
    with pytest.raises(ResNetError, match=r"resnet50\.torchvision need stride_on='3x3' .*got stride_on='1x1'"):
        resnet.create_model("resnet50", weights="torchvision", stride_on="1x1")
    assert not cache.exists()


# --- the command line ----------------------------------------------------------------------------


def test_weights_command_lists_downloads_and_marks_the_cached(server, cache, monkeypatch, tmp_path, capsys) -> None:
    entry = _serve(server, monkeypatch)
    assert main(["weights"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if entry.file in line)
    assert row.split()[:5] == ["resnet20", "torchvision", entry.file, "50.000", "75.000"] and row.endswith("-")
    assert main(["weights", "download", "resnet20.torchvision"]) == 0
    assert capsys.readouterr().out.strip() == f"resnet20.torchvision: {cache / entry.file}"
    assert main(["weights", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    listed = lines[0]  # the one published entry of the stand-in table; then the shipped networks
    assert [line["name"] for line in lines[1:]] == [w.name for w in list_shipped()]
    assert all(line["shipped"] for line in lines[1:])
    assert listed["cached"] == str(cache / entry.file) and listed["sha256_prefix"] == SHA8
    assert main(["weights", "download", "resnet20.torchvision", "--cache-dir", str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / "weights" / entry.file).read_bytes() == DATA
    assert main(["weights", "download", "resnet20.torchvison"]) == 2
    assert "did you mean resnet20.torchvision" in capsys.readouterr().err


def test_summary_predict_and_export_take_weights(server, cache, monkeypatch, tmp_path, capsys) -> None:
    _serve(server, monkeypatch)
    assert main(["summary", "resnet20", "--weights", "torchvision", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "resnet20.torchvision" and summary["stages"][-1]["output_shape"] == [1000]

    rng = np.random.default_rng(0)
    image = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)).save(image)
    assert main(["predict", "resnet20", str(image), "--weights", "torchvision", "--json", "--top", "3"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    # The same pixels by hand, as torchvision evaluates: shorter side 256, centre 224, (x/255 - mean) / std.
    model = resnet.create_model("resnet20", weights="torchvision").eval()
    x = center_view(decode_tensor(image, min_side=256), 256, 224).float() / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        probs, index = model(x[None]).softmax(1)[0].topk(3)
    assert [t["index"] for t in top] == index.tolist()
    assert [t["class"] for t in top] == [IMAGENET_CLASSES[i] for i in index.tolist()]
    np.testing.assert_allclose([t["probability"] for t in top], probs.tolist(), rtol=1e-4)

    output = tmp_path / "r20.pt"
    assert (
        main(
            [
                "export",
                "resnet20",
                "--weights",
                "torchvision",
                "--format",
                "torchscript",
                "--output",
                str(output),
                "--input-size",
                "64",
            ]
        )
        == 0
    )  # 64: a quicker check than 224
    assert "input 3x64x64" in capsys.readouterr().out
    exported = torch.jit.load(str(output))
    with torch.no_grad():
        torch.testing.assert_close(exported(x[None]), model(x[None]), rtol=1e-3, atol=1e-4)
    assert len(server.requests) == 1  # downloaded once, then cached


def test_weights_download_enforces_the_tables_size(server, cache, monkeypatch, capsys) -> None:
    entry = _serve(server, monkeypatch)

    def terabyte(h) -> None:  # Content-Length: 10^12, as a broken or hostile mirror might say
        h.send_response(200)
        h.send_header("Content-Length", str(10**12))
        h.end_headers()
        h.wfile.write(DATA)

    server.custom[f"/{entry.file}"] = terabyte
    assert main(["weights", "download", "resnet20.torchvision"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"announces {10**12} bytes, more than the {entry.max_bytes}" in err
    assert len(DATA) < entry.max_bytes < 1.06 * len(DATA) and not any(cache.iterdir())


# --- integrity beyond the 8-hex prefix --------------------------------------------------------------


def test_the_whole_digest_is_recorded_on_first_use_and_checked_after(cache, tmp_path, monkeypatch) -> None:
    entry = _entry(_closed_port_url())
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    cache.mkdir(parents=True)
    (cache / entry.file).write_bytes(DATA)
    load_published("torchvision", "resnet20")
    pins = json.loads((cache.parent / "weights-sha256.json").read_text())
    assert pins == {entry.file: hashlib.sha256(DATA).hexdigest()}
    load_published("torchvision", "resnet20")  # the same file again: fine
    # The record says another file was verified under this name (a 32-bit prefix collides in seconds of
    # work; a whole SHA-256 does not): the file is refused, whatever its prefix.
    pinned = cache.parent / "weights-sha256.json"
    pinned.write_text(json.dumps({entry.file: SHA8 + "0" * 56}))
    with pytest.raises(ResNetError, match="is not the resnet20.torchvision file verified before"):
        load_published("torchvision", "resnet20")


def test_the_bytes_checked_are_the_bytes_loaded(cache, monkeypatch) -> None:
    """No second read: replacing the file after the check cannot change what loads."""
    from resnet.weights import load as load_mod

    entry = _entry(_closed_port_url())
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    cache.mkdir(parents=True)
    (cache / entry.file).write_bytes(DATA)
    real = load_mod.verified_bytes

    def check_then_swap(path, entry, cache_dir=None):
        data = real(path, entry, cache_dir)
        torch.manual_seed(1)
        torch.save(resnet.create_model("resnet20", num_classes=1000).state_dict(), path)  # swapped after the check
        return data

    monkeypatch.setattr(load_mod, "verified_bytes", check_then_swap)
    state, _ = load_published("torchvision", "resnet20")
    _assert_state(state)  # the checked bytes, not the swapped file


def test_files_outside_the_table_get_the_check_their_name_allows(tmp_path, caplog) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    named = tmp_path / f"resnet20_a1_0-{digest[:8]}.pth"  # a timm-style release file name
    named.write_bytes(DATA)
    _assert_state(load_published(named, "resnet20")[0])
    wrong = tmp_path / "resnet20_a1_0-deadbeef.pth"
    wrong.write_bytes(DATA)
    with pytest.raises(ResNetError, match=r"its name says SHA-256 deadbeef\.\.\., its contents have"):
        load_published(wrong, "resnet20")
    plain = tmp_path / "mine.pth"
    plain.write_bytes(DATA)
    with caplog.at_level("INFO", logger="resnet.weights.load"):
        _assert_state(load_published(plain, "resnet20")[0])
    assert "its name carries no SHA-256 digits: unverified" in caplog.text


# --- a bare file says nothing about its normalisation; its config.json beside it says everything ---------


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8)).save(path)
    return path


def test_a_bare_file_is_never_given_a_guessed_normalisation(tmp_path, capsys) -> None:
    path = tmp_path / "mine.pth"
    torch.save(STATE, path)
    _, info = load_published(path, "resnet20")
    assert info.normalization is None and info.guessed  # not torchvision's by assumption
    _assert_state(resnet.create_model("resnet20", weights=path).state_dict())  # the network needs none
    assert main(["summary", "resnet20", "--weights", str(path), "--json"]) == 0  # nor does its summary
    capsys.readouterr()
    with pytest.raises(ResNetError) as e:
        model_from_weights("resnet20", path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}: a bare weights file does not say how its inputs")
    assert "put its config.json" in message and "--normalization imagenet" in message
    photo = _photo(tmp_path)
    for argv in (
        ["predict", "resnet20", str(photo), "--weights", str(path)],
        ["export", "resnet20", "--weights", str(path), "--format", "torchscript", "--output", str(tmp_path / "x.pt")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "a bare weights file does not say how its inputs were normalised" in err
    assert not (tmp_path / "x.pt").exists()
    # Said explicitly: torchvision's mean and std, on the paper's view (a bare file carries no view either).
    assert (
        main(["predict", "resnet20", str(photo), "--weights", str(path), "--normalization", "imagenet", "--json"]) == 0
    )
    top = json.loads(capsys.readouterr().out)["top"]
    _, meta = model_from_weights("resnet20", path, normalization="imagenet")
    assert meta["normalization"] == imagenet_normalization().to_dict()
    model = resnet.create_model("resnet20", weights=path).eval()
    x = imagenet_normalization().apply(center_view(decode_tensor(photo, min_side=256), 256, 224))
    with torch.no_grad():
        assert [t["index"] for t in top] == model(x[None])[0].topk(5).indices.tolist()
    with pytest.raises(ResNetError, match=r"normalization 'inception': a name is one of imagenet"):
        model_from_weights("resnet20", path, normalization="inception")
    assert main(["predict", str(photo), str(photo), "--normalization", "imagenet"]) == 2  # not for a checkpoint
    assert "option 'normalization' is for --weights" in capsys.readouterr().err


def test_a_config_json_beside_the_file_gives_its_network_classes_normalisation_and_view(tmp_path, capsys) -> None:
    folder = tmp_path / "resnet20.test_in1k"  # as a Hub repository's files, downloaded by hand
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in STATE.items()}, folder / "model.safetensors")
    labels = [f"c{i}" for i in range(1000)]
    config = {"architecture": "resnet20", "num_classes": 1000, "label_names": labels, "pretrained_cfg": TIMM_CFG}
    (folder / "config.json").write_text(json.dumps(config))
    path = folder / "model.safetensors"
    model, meta = model_from_weights("resnet20", path)
    _assert_state(model.state_dict())
    assert meta["normalization"] == {"mode": "channel", "mean": [127.5] * 3, "std": [127.5] * 3}  # 0.5, its own
    assert meta["classes"] == labels and meta["pretrained_cfg"] == TIMM_CFG
    assert meta["eval_view"] == {"resize": 235, "crop": 224, "interpolation": "bicubic"}  # floor(224 / 0.95)
    # resnet predict cuts and normalises the photo as timm would: 235 bicubic, centre 224, (x/255 - 0.5) / 0.5.
    photo = _photo(tmp_path)
    assert main(["predict", "resnet20", str(photo), "--weights", str(path), "--json", "--top", "3"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    x = center_view(decode_tensor(photo), 235, 224, "bicubic").float() / 127.5 - 1
    with torch.no_grad():
        want = model(x[None])[0].softmax(0).topk(3)
    assert [t["class"] for t in top] == [labels[i] for i in want.indices.tolist()]
    np.testing.assert_allclose([t["probability"] for t in top], want.values.tolist(), rtol=1e-4)
    with pytest.raises(
        ResNetError, match=r"model\.safetensors, by its config\.json, holds resnet20 weights, not resnet32"
    ):
        resnet.create_model("resnet32", weights=path)
    # The config is checked as a Hub repository's is: one line naming the file.
    (folder / "config.json").write_text(json.dumps({**config, "pretrained_cfg": {"crop_pct": 0.95}}))
    with pytest.raises(
        ResNetError, match=rf"^{re.escape(str(path))}: its config.json gives no valid pretrained_cfg mean"
    ):
        resnet.create_model("resnet20", weights=path)
    (folder / "config.json").write_text(json.dumps({"model": "resnet20"}))  # e.g. a training run's config.json
    with pytest.raises(ResNetError, match=r"its config.json names no architecture"):
        resnet.create_model("resnet20", weights=path)


def test_a_published_file_by_hand_is_still_the_published_one_beside_a_config(cache, tmp_path, monkeypatch) -> None:
    entry = _entry(_closed_port_url())
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    (tmp_path / entry.file).write_bytes(DATA)
    (tmp_path / "config.json").write_text("{}")  # the published table decides, not a stray file
    _, meta = model_from_weights("resnet20", tmp_path / entry.file)
    assert meta["weights"] == "resnet20.torchvision" and meta["normalization"] == imagenet_normalization().to_dict()
