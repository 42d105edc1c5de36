"""Fine-tuning: --init (run folders, checkpoints, state dicts, published names), freezing, frozen BN,
linear probing, the head's LR, the finetune recipe, resume, and the one-line errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TIMM_CFG, TINY_TRAIN, crash_after, tiny_train_args
from resnet import create_model
from resnet.checkpoints import BEST, LAST, load_checkpoint
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.train import resolve, train
from resnet.train.config import read_run_config
from resnet.train.freeze import keep_in_eval
from resnet.train.trainer import Trainer
from resnet.train.warm_start import apply_init, resolve_init

# ResNet-8 on the digits in a few steps of batch 16; validation after step 2 so frozen BN layers go
# through evaluate()'s eval()/train() switch before the later steps.
QUICK = {**TINY_TRAIN, "batch_size": 16, "iterations": 4, "eval_every": 2, "log_every": 2}
HEAD = ("fc.weight", "fc.bias")


def _folder(root: Path, classes: tuple[str, ...], per_class: int = 6) -> Path:
    """An image folder of 8x8 RGB PNGs, one colour pattern per class."""
    rng = np.random.default_rng(len(classes))
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
            pixels[..., label % 3] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _photos(root: Path) -> Path:
    """An image folder of two classes of 80x80 PNGs: image files, decoded per item (ImageNet-style data)."""
    rng = np.random.default_rng(0)
    for name in ("x", "y"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def _on_folder(tmp: Path, name: str, classes: tuple[str, ...]) -> dict:
    """Two steps on a small folder of 8x8 images of ``classes``, in the run folder ``tmp/name``."""
    return {
        "data_dir": str(_folder(tmp / f"{name}-data", classes)),
        "cache_dir": str(tmp / "cache"),
        "val_split": 0.25,
        "batch_size": 6,
        "iterations": 2,
        "eval_every": 2,
        "log_every": 1,
        "run_dir": str(tmp / name),
    }


def _folder_run(tmp: Path, name: str, classes: tuple[str, ...], **changes: object) -> dict:
    return {**TINY_TRAIN, "data": "imagefolder", **_on_folder(tmp, name, classes), **changes}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    """A finished run on three classes (a, b, c) of an image folder."""
    tmp = tmp_path_factory.mktemp("source")
    train(resolve(_folder_run(tmp, "run", ("a", "b", "c"))))
    return tmp / "run"


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


# -- --init ----------------------------------------------------------------------------------------


def test_init_from_a_run_folder_loads_everything_but_the_head_when_classes_differ(source_run, tmp_path, caplog):
    caplog.set_level("INFO", logger="resnet.train.warm_start")
    cfg = resolve(_folder_run(tmp_path, "target", ("x", "y"), init=str(source_run), recipe="finetune"))
    trainer = Trainer(cfg, cfg.run_dir)
    pretrained = load_checkpoint(source_run / BEST).model
    mine = trainer.model.state_dict()
    assert mine["fc.weight"].shape == (2, 64) and pretrained["fc.weight"].shape == (3, 64)
    for key, value in mine.items():
        if key not in HEAD:
            assert torch.equal(value, pretrained[key]), key
    report = trainer.init_report
    assert report["loaded"] == len(mine) - 2 and report["reinitialised"] == list(HEAD)
    assert sorted(report["ignored"]) == sorted(HEAD)
    assert report["head"].startswith("re-initialised (the weights have 3 classes")
    assert "re-initialised 2 (fc.weight, fc.bias)" in caplog.text
    # The finetune recipe takes the normalisation stored with the weights, not one fitted on the new data.
    source_norm = json.loads((source_run / "normalization.json").read_text())
    assert trainer.normalization.to_dict() == source_norm

    trainer.fit()
    saved = json.loads((tmp_path / "target" / "config.json").read_text())
    assert saved["init"] == str(source_run) and saved["resolved"]["init"]["kind"] == "run"
    assert saved["resolved"]["init"]["path"] == str((source_run / BEST).resolve())
    assert load_checkpoint(tmp_path / "target" / LAST).meta["init"]["source"] == str(source_run)
    # Issue 22 item 7: the --init summary is in the run's log, not only on stderr.
    log = (tmp_path / "target" / "train.log").read_text()
    assert f"--init {source_run} (run, cifar_resnet weights): loaded" in log
    assert "re-initialised 2 (fc.weight, fc.bias)" in log


def test_same_class_count_but_other_classes_resets_the_head(source_run, tmp_path):
    cfg = resolve(_folder_run(tmp_path, "target", ("p", "q", "r"), init=str(source_run)))
    trainer = Trainer(cfg, cfg.run_dir)
    assert trainer.init_report["reinitialised"] == list(HEAD)
    assert "other classes" in trainer.init_report["head"]
    assert not torch.equal(trainer.model.fc.weight, load_checkpoint(source_run / BEST).model["fc.weight"])


def test_init_head_load_with_a_wrong_class_count_is_one_line(source_run, tmp_path, capsys):
    data = _folder(tmp_path / "data", ("x", "y"))
    argv = tiny_train_args(
        tmp_path / "run",
        data="imagefolder",
        data_dir=data,
        cache_dir=tmp_path / "cache",
        init=source_run,
        init_head="load",
    )
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its classifier has 3 classes, the data has 2" in err
    assert "--init-head auto or reset" in err


def test_same_classes_load_the_head_too(trained_run, tmp_path):
    cfg = resolve({**QUICK, "init": str(trained_run), "run_dir": str(tmp_path / "run")})
    trainer = Trainer(cfg, cfg.run_dir)
    assert trainer.init_report["reinitialised"] == [] and trainer.init_report["head"] == "loaded (same classes)"
    assert torch.equal(trainer.model.fc.weight, load_checkpoint(trained_run / BEST).model["fc.weight"])


def test_strict_mismatch_names_the_keys_and_non_strict_loads_what_fits():
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    other = create_model("cifar_resnet", depth=14, num_classes=10).state_dict()
    info = {"source": "deeper.pth", "kind": "state_dict"}
    with pytest.raises(
        ResNetError,
        match=r"does not fit cifar_resnet: unexpected keys: layer1\.1\.conv1\.weight"
        r".*only the classifier \(fc\) may differ, unless --init-non-strict",
    ):
        apply_init(model, other, info, model_name="cifar_resnet")
    report = apply_init(model, other, info, non_strict=True)
    assert report["reinitialised"] == [] and report["loaded"] == len(model.state_dict())
    assert "layer1.1.conv1.weight" in report["ignored"]
    assert torch.equal(model.layer2[0].conv1.weight, other["layer2.0.conv1.weight"])

    wider = create_model("cifar_resnet", depth=8, num_classes=10, in_channels=3).state_dict()
    with pytest.raises(
        ResNetError,
        match=r"shape mismatches \(file vs model\): conv1\.weight \(16, 3, 3, 3\) vs "
        r"\(16, 1, 3, 3\)",
    ):
        apply_init(create_model("cifar_resnet", depth=8, num_classes=10, in_channels=1), wider, info)


def test_pth_state_dict_with_a_ddp_prefix(tmp_path):
    source = create_model("cifar_resnet", depth=8, num_classes=10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pth")
    state, info = resolve_init(str(tmp_path / "w.pth"), "cifar_resnet")
    assert info["kind"] == "state_dict" and info["normalization"] is None  # a bare file does not say it
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    report = apply_init(model, state, info)
    assert report["head"] == "loaded (same shape)"
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())


def test_bad_init_sources(tmp_path, monkeypatch):
    with pytest.raises(ResNetError, match="no such file or run folder"):
        resolve_init(str(tmp_path / "missing.pth"))
    with pytest.raises(ResNetError, match="holds no checkpoint"):
        resolve_init(str(tmp_path))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ResNetError, match="cannot load weights from"):
        resolve_init(str(tmp_path / "junk.pth"), "cifar_resnet")
    monkeypatch.setitem(sys.modules, "resnet.weights", None)  # as if resnet.weights did not exist
    with pytest.raises(ResNetError, match="unknown weights 'resnet20_cifar10'"):
        resolve_init("resnet20_cifar10", "resnet20")


def _fake_published(monkeypatch, calls: list) -> dict[str, torch.Tensor]:
    """``resnet.weights.load_published`` answering with weights trained with the stride on the 3x3 (as
    torchvision's bottleneck nets are) and a normalisation of their own, without any download."""
    import resnet.weights
    from resnet.data import Normalization
    from resnet.weights.load import WeightsInfo

    weights = create_model("cifar_resnet", depth=8, num_classes=10, in_channels=1).state_dict()
    norm = Normalization("channel", torch.tensor([100.0]), torch.tensor([50.0]))

    def load_published(name, model_name):
        calls.append((name, model_name))
        return weights, WeightsInfo(
            name=f"{model_name}.{name}",
            model=model_name,
            model_options={"stride_on": "3x3"},
            classes=None,
            normalization=norm,
            source=Path("/nowhere/tiny.pth"),
        )

    monkeypatch.setattr(resnet.weights, "load_published", load_published)
    return weights


def test_published_names_build_the_network_the_weights_were_trained_as(monkeypatch, tmp_path):
    calls: list = []
    weights = _fake_published(monkeypatch, calls)
    state, info = resolve_init("tiny8", "cifar_resnet")
    assert calls == [("tiny8", "cifar_resnet")] and state is weights
    assert info["kind"] == "published" and info["model_options"] == {"stride_on": "3x3"}

    run = tmp_path / "run"
    trainer = Trainer(resolve({**QUICK, "run_dir": str(run), "init": "tiny8", "normalization": "init"}), run)
    assert trainer.model_options["stride_on"] == "3x3"  # taken from the weights, not the paper's default
    assert trainer.normalization.mode == "channel" and float(trainer.normalization.mean[0]) == 100.0
    trainer.fit()
    # A resumed run is built the same way, although it never reads --init again.
    assert load_checkpoint(run / LAST).meta["model_options"]["stride_on"] == "3x3"
    assert train(resume=run, iterations=6).summary["iterations"] == 6
    assert load_checkpoint(run / LAST).meta["model_options"]["stride_on"] == "3x3"

    with pytest.raises(ResNetError, match="option 'stride-on'.*trained with stride-on 3x3, not 1x1"):
        Trainer(resolve({**QUICK, "run_dir": str(tmp_path / "other"), "init": "tiny8", "stride_on": "1x1"}))


def test_a_bare_bottleneck_state_dict_gets_torchvisions_stride_placement_unless_told_otherwise(tmp_path):
    # torchvision's and timm's bottleneck nets carry the stride on the 3x3: same keys, another function.
    from resnet.train.warm_start import init_model_options

    path = tmp_path / "bottleneck.pth"
    torch.save(create_model("cifar_resnet", depth=11, block="bottleneck").state_dict(), path)
    _, info = resolve_init(str(path), "cifar_resnet")
    assert init_model_options(info, {"num_classes": 5})["stride_on"] == "3x3"
    assert init_model_options(info, {"stride_on": "1x1"})["stride_on"] == "1x1"  # a guess yields to the user
    basic = tmp_path / "basic.pth"
    torch.save(create_model("cifar_resnet", depth=8).state_dict(), basic)
    assert "stride_on" not in init_model_options(resolve_init(str(basic), "cifar_resnet")[1], {})


# -- freezing ----------------------------------------------------------------------------------------


def _run_and_compare(tmp_path: Path, **changes: object) -> tuple[Trainer, dict, dict]:
    cfg = resolve({**QUICK, "run_dir": str(tmp_path / "run"), **changes})
    trainer = Trainer(cfg, cfg.run_dir)
    before = _state(trainer)
    trainer.fit()
    return trainer, before, _state(trainer)


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_freeze_until_leaves_the_frozen_part_unchanged(tmp_path):
    trainer, before, after = _run_and_compare(tmp_path, freeze_until="layer1")
    changed = _changed(before, after)
    frozen = {k for k in before if k.split(".")[0] in ("conv1", "bn1", "layer1")}
    assert frozen and not frozen & changed  # weights and BN statistics alike
    trained = {k for k, p in trainer.model.named_parameters() if k.split(".")[0] in ("layer2", "layer3", "fc")}
    assert trained <= changed
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    for name, p in trainer.model.named_parameters():
        assert p.requires_grad == (name not in frozen) == (id(p) in in_optimizer), name
    assert trainer.model.training and not trainer.model.layer1[0].bn1.training and trainer.model.layer2[0].bn1.training


def test_freeze_bn_keeps_every_running_statistic(tmp_path):
    trainer, before, after = _run_and_compare(tmp_path, freeze_bn=True)
    changed = _changed(before, after)
    stats = {k for k in before if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert stats and not stats & changed
    # Only the statistics are frozen: BN's scale and shift still learn, as does everything else.
    assert {k for k, _ in trainer.model.named_parameters()} <= changed
    bns = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert trainer.model.training and bns and not any(m.training for m in bns)


def test_linear_probe_changes_only_the_classifier(tmp_path):
    trainer, before, after = _run_and_compare(tmp_path, linear_probe=True)
    assert _changed(before, after) == set(HEAD)
    assert [len(g["params"]) for g in trainer.optimizer.param_groups] == [2]


def test_frozen_bn_stays_in_eval_through_train_and_deepcopy():
    import copy

    model = create_model("cifar_resnet", depth=8, num_classes=10)
    keep_in_eval(model.bn1)
    model.train()
    assert model.training and not model.bn1.training and model.layer1[0].bn1.training
    twin = copy.deepcopy(model)
    twin.train()
    assert not twin.bn1.training
    model.eval()
    twin.bn1.train(True)  # rebound to the copy: it must not touch the original, and stays eval itself
    assert not twin.bn1.training and not model.training


def test_head_lr_gets_its_own_group(tmp_path):
    cfg = resolve(
        {
            **QUICK,
            "run_dir": str(tmp_path / "run"),
            "head_lr": "10x",
            "wd_bn_bias": False,
            "lr": 0.05,
            "weight_decay": 5e-4,
        }
    )
    trainer = Trainer(cfg, cfg.run_dir)
    names = {id(p): k for k, p in trainer.model.named_parameters()}
    groups = [
        ([names[id(p)] for p in g["params"]], g["weight_decay"], g["lr_scale"]) for g in trainer.optimizer.param_groups
    ]
    assert groups[2:] == [(["fc.weight"], 5e-4, 10.0), (["fc.bias"], 0.0, 10.0)]
    assert all(scale == 1.0 and "fc.weight" not in keys for keys, _, scale in groups[:2])
    trainer._train_step(next(trainer._batches()))
    lr = trainer.schedule.lr(0)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [lr, lr, 10 * lr, 10 * lr]

    absolute = Trainer(cfg.replace(head_lr="0.2", wd_bn_bias=True), cfg.run_dir)
    assert [g["lr_scale"] for g in absolute.optimizer.param_groups] == [1.0, pytest.approx(4.0)]


def test_resume_of_an_init_run_is_bit_identical_and_needs_no_init(trained_run, tmp_path, monkeypatch):
    init = tmp_path / "init"
    shutil.copytree(trained_run, init)
    opts = {
        **QUICK,
        "iterations": 8,
        "checkpoint_every": 3,
        "eval_every": 4,
        "init": str(init),
        "freeze_until": "layer1",
        "freeze_bn": True,
        "head_lr": "5x",
        "schedule": "cosine",
        "augment": "cifar",
        "normalization": "init",
    }
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(resolve({**opts, "run_dir": str(straight)}))

    trainer = Trainer(resolve({**opts, "run_dir": str(split)}), split)
    crash_after(trainer, monkeypatch, 5)
    with pytest.raises(RuntimeError):
        trainer.fit()
    shutil.rmtree(init)  # the init applies at step 0 only: resuming never reads it
    train(resume=split)
    a, b = load_checkpoint(straight / LAST), load_checkpoint(split / LAST)
    assert a.state["step"] == b.state["step"] == 8
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    assert a.meta["init"] == b.meta["init"] and a.meta["normalization"] == b.meta["normalization"]


# -- config ------------------------------------------------------------------------------------------


def test_config_fields_round_trip_through_config_json(tmp_path):
    cfg = resolve(
        {
            **QUICK,
            "recipe": "finetune",
            "data": "digits",
            "init": "some/run",
            "init_head": "reset",
            "init_non_strict": True,
            "freeze_until": "stem",
            "freeze_bn": True,
            "head_lr": "10x",
        }
    )
    assert (cfg.normalization, cfg.lr, cfg.schedule, cfg.wd_bn_bias, cfg.warm_rule) == (
        "init",
        0.01,
        "cosine",
        False,
        "off",
    )
    from resnet.train.config import save_json

    save_json(cfg, tmp_path / "config.json")
    assert read_run_config(tmp_path / "config.json")[0] == cfg
    probe = resolve({**QUICK, "linear_probe": True, "head_lr": "0.5"})
    save_json(probe, tmp_path / "probe.json")
    assert read_run_config(tmp_path / "probe.json")[0] == probe


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"freeze_until": "layer4"},
            "option 'freeze-until': 'layer4' is not a part of cifar_resnet (valid: conv1, stem, "
            "layer1, layer2, layer3)",
        ),
        ({"head_lr": "fast"}, "option 'head-lr': must be a multiple of --lr such as '10x' or a learning rate"),
        ({"normalization": "init"}, "option 'normalization': 'init' is the normalisation stored with the --init"),
        ({"recipe": "finetune", "data": "digits"}, "option 'normalization': 'init' is the normalisation stored"),
        ({"linear_probe": True, "freeze_until": "layer2"}, "--linear-probe already freezes the whole backbone"),
    ],
)
def test_bad_options_are_one_line(changes, message):
    with pytest.raises(ResNetError) as e:
        resolve({**QUICK, **changes})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_weights_of_another_network_on_the_command_line(trained_run, tmp_path, capsys):
    argv = tiny_train_args(tmp_path / "run", depth=14, init=trained_run)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"--init {trained_run} (run, cifar_resnet weights) does not fit cifar_resnet: "
        "missing keys: layer1.1.conv1.weight"
        in err
    )


def test_init_with_nan_weights_names_the_weights(source_run, tmp_path):
    """Issue 22 item 17: not 'the loss became NaN ... Try a lower --lr' at step 1, but the file at fault."""
    ckpt = load_checkpoint(source_run / BEST)
    bad = {k: torch.full_like(v, float("nan")) if k == "conv1.weight" else v for k, v in ckpt.model.items()}
    from resnet.checkpoints import save_checkpoint

    save_checkpoint(tmp_path / "nan.safetensors", ckpt.meta, bad)
    cfg = resolve(_folder_run(tmp_path, "target", ("x", "y"), init=str(tmp_path / "nan.safetensors")))
    with pytest.raises(ResNetError, match=r"nan.safetensors \(checkpoint, cifar_resnet weights\): 1 of its tensors "):
        Trainer(cfg, cfg.run_dir)
    assert not (tmp_path / "target").exists()


# -- --init with a published name (issue 22 item 3): the cached file laid out as a download leaves it ---


def _published_in_cache(tmp_path, monkeypatch, model: str, tag: str = "torchvision", resize: int = 256):
    """A stand-in table of one entry, ``MODEL.TAG``, whose file already lies in the weights cache (no network)."""
    import hashlib
    import io

    from resnet.weights import published
    from resnet.weights.published import PublishedWeights

    torch.manual_seed(0)
    state = create_model(model, num_classes=1000).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    entry = PublishedWeights(
        model,
        tag,
        f"http://127.0.0.1:9/{model}-{hashlib.sha256(data).hexdigest()[:8]}.pth",
        50.0,
        75.0,
        sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k),
        len(data) / 1e6,
        resize,
        "https://example.invalid/recipe",
    )
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    monkeypatch.setenv("RESNET_CACHE", str(tmp_path / "resnet-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "resnet-cache" / "weights").mkdir(parents=True)
    (tmp_path / "resnet-cache" / "weights" / entry.file).write_bytes(data)
    return state


@pytest.fixture
def published_resnet32(tmp_path, monkeypatch):
    """'resnet32.torchvision', cached."""
    return _published_in_cache(tmp_path, monkeypatch, "resnet32")


def _finetune(tmp: Path, name: str, **changes: object) -> dict:
    """The finetune recipe on a two-class folder of 8x8 images, --model left out unless in ``changes``."""
    return {"recipe": "finetune", **_on_folder(tmp, name, ("x", "y")), "quiet": True, **changes}


@pytest.mark.parametrize("spec", ["resnet32", "resnet32.torchvision"])
def test_init_with_a_published_name_builds_its_network(published_resnet32, tmp_path, spec, caplog):
    """--model left at the recipe's resnet20: the weights' own network is built (was 'no published weights
    for resnet20' and 'are for resnet32, not resnet20')."""
    caplog.set_level("INFO", logger="resnet.train.warm_start")
    result = train(resolve(_finetune(tmp_path, "run", init=spec)))
    assert result.summary["model"] == "resnet32"
    assert f"--init {spec}: building resnet32, the network of resnet32.torchvision" in caplog.text
    report = json.loads((tmp_path / "run" / "config.json").read_text())
    assert report["model"] == "resnet32" and report["resolved"]["init"]["kind"] == "published"
    assert report["resolved"]["init"]["loaded"] == len(published_resnet32) - 2  # all but the 1000-class head
    assert load_checkpoint(tmp_path / "run" / BEST).meta["model"] == "resnet32"


def test_init_with_a_published_name_and_its_model(published_resnet32, tmp_path, capsys):
    """--model resnet32 --init resnet32 (was 'unknown weights resnet32'); another --model is one line."""
    cfg = resolve(_finetune(tmp_path, "run", model="resnet32", init="resnet32"))
    assert Trainer(cfg, cfg.run_dir).init_report["source"] == "resnet32"
    argv = ["train", "--recipe", "finetune", "--model", "resnet44", "--init", "resnet32.torchvision"]
    assert main([*argv, "--data-dir", str(tmp_path / "run-data"), "--run-dir", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "resnet32.torchvision are weights for resnet32, not resnet44; give --model resnet32" in err


def test_a_bare_network_name_is_its_torchvision_v1_weights():
    from resnet.weights import find_by_name

    assert find_by_name("resnet18").name == "resnet18.torchvision"
    assert find_by_name("resnet50.torchvision-v2").tag == "torchvision-v2"
    with pytest.raises(ResNetError, match="did you mean resnet18.torchvision"):
        find_by_name("resnet18.torchvison")


def test_init_network_of_small_images_on_photos_says_the_input_size_and_its_cost(source_run, tmp_path, caplog):
    """Issue 22 item 5: an 8x8 network fine-tuned on 80x80 files trains on 224x224 crops: a line says so."""
    photos = _photos(tmp_path / "photos")
    caplog.set_level("WARNING", logger="resnet.train.build")
    cfg = resolve(_folder_run(tmp_path, "target", ("x", "y"), init=str(source_run), data_dir=str(photos)))
    trainer = Trainer(cfg, cfg.run_dir)
    note = (
        f"--init {source_run} was trained on 8x8 images; this run trains on 224x224 crops of the image files "
        "(about 784x the pixels, and the time, of 8x8 per image). To train at 8x8, resize the images to 8x8 first"
    )
    assert note in caplog.text and trainer.init_report["input_size"].startswith(note)
    # The same size: no line.
    caplog.clear()
    Trainer(resolve(_folder_run(tmp_path, "same", ("x", "y"), init=str(source_run))))
    assert "was trained on" not in caplog.text


# -- a weights file without its config.json, and with it; the --init weights' test view ---------------------


def test_a_bare_file_with_normalization_init_is_one_line_and_a_fitted_normalisation_needs_none(tmp_path, capsys):
    path = tmp_path / "bare.pth"
    torch.save(create_model("resnet20", num_classes=10).state_dict(), path)
    argv = ["train", "--recipe", "finetune", "--init", str(path), "--run-dir", str(tmp_path / "run")]
    # Refused before the data are read (this folder does not even exist), and nothing is written.
    assert main([*argv, "--data-dir", str(tmp_path / "no-such-folder")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--init {path}: a bare weights file does not say how its inputs were normalised; put its config.json" in err
    assert "or give --normalization channel or pixel-mean (fitted on this run's data)" in err
    assert not (tmp_path / "run").exists()
    # Statistics fitted on the run's own data need nothing from the file.
    cfg = resolve(_finetune(tmp_path, "fitted", init=str(path), normalization="channel"))
    trainer = Trainer(cfg, cfg.run_dir)
    assert trainer.normalization.mode == "channel" and trainer.init_report["loaded"] > 0


def test_a_file_with_its_config_json_brings_its_network_and_normalisation(tmp_path, caplog):
    from safetensors.torch import save_file

    folder = tmp_path / "resnet32.test_in1k"
    folder.mkdir()
    state = create_model("resnet32", num_classes=10).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    config = {"architecture": "resnet32", "num_classes": 10, "pretrained_cfg": TIMM_CFG}
    (folder / "config.json").write_text(json.dumps(config))
    spec = str(folder / "model.safetensors")
    _, info = resolve_init(spec, "resnet32")
    assert info["normalization"] == {"mode": "channel", "mean": [127.5] * 3, "std": [127.5] * 3}
    assert info["view"] == {"resize": 235, "crop": 224, "interpolation": "bicubic"} and info["model"] == "resnet32"
    caplog.set_level("INFO", logger="resnet.train.warm_start")
    cfg = resolve(_finetune(tmp_path, "run", init=spec))  # --model left at the recipe's resnet20
    trainer = Trainer(cfg, cfg.run_dir)
    assert f"--init {spec}: building resnet32, the network its config.json names" in caplog.text
    assert trainer.cfg.model == "resnet32" and trainer.normalization.to_dict() == info["normalization"]
    # 8x8 images in memory are tested at their own size, not at the weights' ImageNet view.
    assert trainer.run.eval_view is None and "eval_view" not in trainer.meta()


def test_fine_tuning_validates_and_records_the_init_weights_test_view(tmp_path, monkeypatch):
    """Published V2-style weights (resize 232, centre 224) on image files: validation, the final evaluation,
    the checkpoints, train.log and a resumed run all use their view, not the paper's 256/224."""
    from resnet.data.transforms import ImageNetView
    from resnet.train import trainer as trainer_module
    from resnet.weights import published

    _published_in_cache(tmp_path, monkeypatch, "resnet20", tag="torchvision-v2", resize=232)
    v2 = ImageNetView(resize=232, crop=224)
    views = []
    real = trainer_module.make_eval_loader

    def recording(*args, **kw):
        views.append(kw["view"])
        return real(*args, **kw)

    monkeypatch.setattr(trainer_module, "make_eval_loader", recording)
    changes = {
        "init": "resnet20.torchvision-v2",
        "data_dir": str(_photos(tmp_path / "photos")),
        "final_protocol": "center",
        "batch_size": 3,
        "iterations": 1,
        "eval_every": 1,
    }
    cfg = resolve(_finetune(tmp_path, "run", **changes))
    trainer = Trainer(cfg, cfg.run_dir)
    assert trainer.run.val_loader.view == v2
    trainer.fit()
    assert views == [v2]  # the final evaluation's own loader (another protocol than validation's)
    run = tmp_path / "run"
    for name in (BEST, LAST):
        assert load_checkpoint(run / name).meta["eval_view"] == v2.to_dict()  # for resnet eval RUN and export
    line = "test view of the --init weights: shorter side 232, centre 224 crop, bilinear"
    assert (run / "train.log").read_text().count(line) == 1
    # A resumed run keeps it from its checkpoint: the published table and the cached file are gone.
    monkeypatch.setattr(published, "PUBLISHED", ())
    shutil.rmtree(tmp_path / "resnet-cache" / "weights")
    resumed = Trainer.resume(run, iterations=2)
    assert resumed.run.val_loader.view == v2
    resumed.fit()
    assert load_checkpoint(run / LAST).meta["eval_view"] == v2.to_dict()
    assert (run / "train.log").read_text().count(line) == 2
