"""The cifar-fast recipe (beyond the paper) and what it is built from: its configuration, the linear
decay, ``--precision native``, ``--train-subset`` and the time-to-accuracy benchmark's arithmetic."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from resnet import inference
from resnet.data import load_dataset
from resnet.device import resolve_speed
from resnet.errors import ResNetError
from resnet.train import config as C
from resnet.train.schedule import build_schedule


def test_cifar_fast_recipe_configuration():
    cfg = C.resolve({"recipe": "cifar-fast", "data_dir": "/x"})
    # The network and data are the paper's CIFAR setting ...
    assert (cfg.model, cfg.data, cfg.val_split, cfg.augment, cfg.batch_size) == (
        "resnet20",
        "cifar10",
        5000,
        "cifar",
        128,
    )
    # ... the recipe is not: a fixed budget in epochs, warm-up then linear decay, label smoothing,
    # weight decay 5e-4 on weights only, and the speed options that pay on every device.
    assert (cfg.iterations, cfg.epochs, cfg.schedule, cfg.warmup_iterations, cfg.warm_rule) == (
        None,
        24.0,
        "linear",
        200,
        "off",
    )
    assert (cfg.lr, cfg.weight_decay, cfg.wd_bn_bias, cfg.label_smoothing) == (0.1, 5e-4, False, 0.1)
    assert (cfg.precision, cfg.channels_last, cfg.normalization) == ("native", "on", "channel")
    assert (cfg.val_protocol, cfg.final_protocol) == ("single", "flip")
    # Any option still overrides it, e.g. the paper's deeper net or a longer budget.
    longer = C.resolve({"recipe": "cifar-fast", "data_dir": "/x", "model": "resnet56", "epochs": 40})
    assert (longer.model, longer.epochs, longer.schedule) == ("resnet56", 40.0, "linear")
    assert "cifar-fast" in C.RECIPES and C.RECIPES["cifar-paper"]["schedule"] == "multistep"


def test_linear_decay_after_warmup_reaches_zero():
    cfg = C.resolve({"recipe": "cifar-fast", "data_dir": "/x", "lr": 1.0})
    s = build_schedule(cfg, 1200)
    assert s.lr(0) == pytest.approx(1 / 200) and s.lr(199) == pytest.approx(1.0)
    # After the warm-up a straight line: half way through the remaining 1000 steps, half the LR.
    assert s.lr(700) == pytest.approx(0.5) and s.lr(950) == pytest.approx(0.25)
    assert s.lr(1199) == pytest.approx(1 / 1000) and s.lr(1200) == pytest.approx(0.0)
    lrs = [s.lr(i) for i in range(200, 1201)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_native_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert inference.precision_name("native", cpu) == expected
    assert inference.precision_name("auto", cpu) == "fp32"  # auto never changes CPU numerics
    assert inference.precision_name("bf16", cpu) == "bf16"  # asked for explicitly: given


def test_bf16_on_a_cpu_without_bf16_kernels_warns(monkeypatch, caplog):
    import resnet.device as device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING"):
        speed = resolve_speed("cpu", "bf16")
    assert speed.precision == "bf16" and "emulated" in caplog.text and "--precision native" in caplog.text
    caplog.clear()
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    resolve_speed("cpu", "bf16")
    assert "emulated" not in caplog.text


def test_train_subset_is_seeded_keeps_the_validation_set_and_is_recorded():
    full = load_dataset("digits", val_split=0.2, split_seed=3)
    a = load_dataset("digits", val_split=0.2, split_seed=3, train_subset=500)
    b = load_dataset("digits", val_split=0.2, split_seed=3, train_subset=500)
    other = load_dataset("digits", val_split=0.2, split_seed=4, train_subset=500)
    assert len(a.train) == 500 and len(full.train) == 1438
    assert torch.equal(a.val.images, full.val.images)  # the held-out images do not move
    assert torch.equal(a.train.images, b.train.images) and not torch.equal(a.train.images, other.train.images)
    # Every kept image is one of the full training part's images.
    flat = {bytes(x.numpy().tobytes()) for x in full.train.images}
    assert all(bytes(x.numpy().tobytes()) in flat for x in a.train.images)
    assert a.split["train_subset"] == 500 and a.split["train_size"] == 500
    with pytest.raises(ResNetError, match="train-subset.*more than the 1438"):
        load_dataset("digits", val_split=0.2, train_subset=2000)
    with pytest.raises(ResNetError, match="train-subset"):
        C.resolve({"train_subset": 0})


def test_train_subset_in_a_run(tmp_path):
    from resnet.train import train

    result = train(
        C.resolve(
            {
                "train_subset": 300,
                "iterations": 3,
                "batch_size": 50,
                "run_dir": str(tmp_path / "r"),
                "quiet": True,
                "tensorboard": False,
                "final_protocol": "flip",
            }
        )
    )
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["train_subset"] == 300 and config["resolved"]["steps_per_epoch"] == 6
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in records if r["kind"] == "val"]
    # Validation records carry the run's wall time, for error-against-time curves.
    assert vals and all(r["wall_s"] > 0 for r in vals)
    # The final test takes each image with its mirror image (the cifar-fast recipe's final protocol).
    assert result.summary["final"]["protocol"] == "flip" and result.summary["final"]["images"] == 359


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_accuracy.py"
    spec = importlib.util.spec_from_file_location("time_to_accuracy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_to_accuracy_reads_curves_and_times_targets(tmp_path):
    bench = _bench()
    run = tmp_path / "run"
    run.mkdir()
    lines = [
        {"kind": "train", "step": 1, "train_error": 0.9},
        {"kind": "val", "step": 10, "val_error": 0.30, "wall_s": 60.0},
        {"kind": "val", "step": 20, "val_error": 0.14, "wall_s": 120.0},
        {"kind": "val", "step": 30, "val_error": 0.16, "wall_s": 180.0},
        {"kind": "val", "step": 40, "val_error": 0.11, "wall_s": 240.0},
    ]
    (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, lines)) + '\n{"kind": "va')  # torn last line
    curve = bench.val_curve(run, {})  # a run without its final test yet
    assert curve == [(1.0, 0.30), (2.0, 0.14), (3.0, 0.16), (4.0, 0.11)]
    assert bench.minutes_to(curve, 0.15) == 2.0 and bench.minutes_to(curve, 0.12) == 4.0
    assert bench.minutes_to(curve, 0.05) is None
    # A finished run's final test (its own protocol, e.g. flip) ends the curve at the run's wall time.
    finished = bench.val_curve(run, {"wall_time_s": 270.0, "final": {"top1_error": 0.10}})
    assert finished[-1] == (4.5, 0.10) and bench.minutes_to(finished, 0.105) == 4.5
    run_facts = {"epochs": 7.0, "images_per_s": 205.6}
    results = {
        "cifar-fast": {
            1: {"final": {"top1_error": 0.11}, "command_s": 300.0, **run_facts},
            2: {"final": {"top1_error": 0.13}, "command_s": 320.0, **run_facts},
        }
    }
    text = bench.table(results, {"cifar-fast": {1: curve, 2: curve}}, [0.15, 0.05])
    assert "| cifar-fast | 1 | 7 | 206 | 11.00 | 5.0 | 2.0 | - |" in text
    assert "| cifar-fast | mean of 2 | | | 12.00 ± 1.41 |" in text


def test_time_to_accuracy_gives_both_recipes_the_same_length():
    bench = _bench()
    options = {"model": "resnet20", "data": "imagefolder", "data_dir": "d", "epochs": 24.0, "time_limit": None}
    args = type("A", (), options)()
    fast = C.resolve(_as_options(bench.flags_for("cifar-fast", args, 1)))
    paper = C.resolve(_as_options(bench.flags_for("cifar-paper", args, 1)))
    assert fast.epochs == paper.epochs == 24.0 and fast.iterations is None and paper.iterations is None
    assert (paper.schedule, paper.lr, paper.weight_decay, paper.label_smoothing) == ("multistep", 0.1, 1e-4, 0.0)
    assert (fast.precision, fast.channels_last) == (paper.precision, paper.channels_last) == ("native", "on")
    # With --time-limit, each plans its own length within it (the recipes' lengths give way).
    args.time_limit = "30m"
    for recipe in ("cifar-fast", "cifar-paper"):
        timed = C.resolve(_as_options(bench.flags_for(recipe, args, 1)))
        assert (timed.time_limit, timed.epochs, timed.iterations) == (1800.0, None, None)


def test_time_to_accuracy_adds_a_lever_to_every_run_and_names_its_rows_and_folders_by_it():
    bench = _bench()
    options = {"model": "resnet20", "data": "imagefolder", "data_dir": "d", "epochs": 24.0, "time_limit": "30m"}
    args = type("A", (), {**options, "train_args": "--cutout 16 --ema-decay 0.999"})()
    cfg = C.resolve(_as_options(bench.flags_for("cifar-fast", args, 0)))
    assert (cfg.cutout, cfg.ema_decay, cfg.time_limit, cfg.recipe) == (16, 0.999, 1800.0, "cifar-fast")
    name = bench.row_name("cifar-fast", args.train_args)
    assert name == "cifar-fast --cutout 16 --ema-decay 0.999"
    assert bench.folder_name("resnet20", name, 0) == "resnet20-cifar-fast-cutout-16-ema-decay-0.999-seed0"
    # Without one, the names the earlier runs have (their folders are reused).
    plain = bench.row_name("cifar-fast", "")
    assert (plain, bench.folder_name("resnet20", plain, 2)) == ("cifar-fast", "resnet20-cifar-fast-seed2")


def _as_options(flags: list[str]) -> dict[str, str]:
    """``--key value`` pairs as config options (the flags the script passes are all valued)."""
    pairs = [f for f in flags if f != "--quiet"]
    return {k[2:].replace("-", "_"): v for k, v in zip(pairs[::2], pairs[1::2])}
