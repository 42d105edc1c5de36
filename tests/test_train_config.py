"""Config resolution: defaults -> recipe -> TOML -> CLI, validation, help text, JSON round trip."""

from __future__ import annotations

import argparse

import pytest

from resnet.commands import train_options
from resnet.errors import ResNetError
from resnet.train import config as C
from resnet.train.schedule import build_schedule, milestone_steps


def test_cifar_paper_recipe_is_the_papers_schedule():
    cfg = C.resolve({"recipe": "cifar-paper", "data_dir": "/x"})
    assert (cfg.iterations, cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay) == (64000, 128, 0.1, 0.9, 1e-4)
    assert milestone_steps(cfg.milestones, cfg.iterations) == [32000, 48000]
    assert (cfg.val_split, cfg.augment, cfg.normalization) == (5000, "cifar", "pixel-mean")
    assert not cfg.uses_warm_rule
    assert C.resolve({"recipe": "cifar-paper", "data_dir": "/x", "model": "resnet110"}).uses_warm_rule


def test_iterations_scale_milestones_proportionally():
    cfg = C.resolve({"recipe": "cifar-paper", "data_dir": "/x", "iterations": 6400})
    assert milestone_steps(cfg.milestones, cfg.iterations) == [3200, 4800]
    sched = build_schedule(cfg, cfg.iterations)
    assert [sched.lr(s) for s in (0, 3199, 3200, 4799, 4800)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_imagenet_paper_recipe():
    cfg = C.resolve({"recipe": "imagenet-paper", "data_dir": "/x"})
    assert (cfg.batch_size, cfg.schedule, cfg.final_protocol, cfg.augment) == (256, "plateau", "ten-crop", "imagenet")


def test_toml_file_then_cli_override(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('recipe = "cifar-paper"\ndata-dir = "/d"\n[optimisation]\nlr = 0.05\nbatch_size = 64\n')
    cfg = C.resolve({"batch_size": 32}, f)
    assert (cfg.recipe, cfg.data_dir, cfg.lr, cfg.batch_size, cfg.iterations) == ("cifar-paper", "/d", 0.05, 32, 64000)


@pytest.mark.parametrize(
    "cli, message",
    [
        ({"augment": "mixup"}, "choose from cifar, imagenet, flip, none"),
        ({"recipe": "fast"}, "choose from digits, cifar-paper, imagenet-paper"),
        ({"batch_size": 0}, "'batch-size': must be at least 1"),
        ({"milestones": "0.75,0.5"}, "increasing fractions"),
        ({"data": "cifar10"}, "needs --data-dir"),
        ({"lr": "fast"}, "'lr' must be a number"),
        ({"bogus": 1}, "unknown option 'bogus'"),
    ],
)
def test_invalid_values_give_one_line_errors(cli, message):
    with pytest.raises(ResNetError, match=message) as e:
        C.resolve(cli)
    assert "\n" not in str(e.value)


def test_bad_toml_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("lr = 0.1\nwarp = 3\n")
    with pytest.raises(ResNetError, match=r"bad.toml: unknown option 'warp' \(valid: recipe, model"):
        C.resolve({}, f)
    with pytest.raises(ResNetError, match="does not exist"):
        C.resolve({}, tmp_path / "missing.toml")


def test_help_lists_every_option_with_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # no wrapping inside "cifar-paper"
    parser = argparse.ArgumentParser()
    train_options.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for name in C.field_names():
        assert "--" + name.replace("_", "-") in text
    assert "default: 0.1" in text and "cifar-paper: 64000" in text
    args = parser.parse_args(["--lr", "0.2", "--no-wd-bn-bias", "--milestones", "0.3,0.6"])
    cfg = C.resolve(train_options.given_options(args))
    assert (cfg.lr, cfg.wd_bn_bias, cfg.milestones, cfg.batch_size) == (0.2, False, (0.3, 0.6), 64)


def test_json_round_trip(tmp_path):
    cfg = C.resolve({"recipe": "cifar-paper", "data_dir": "/x", "iterations": 100})
    C.save_json(cfg, tmp_path / "config.json", extra={"milestone_steps": [50, 75]})
    assert C.load_json(tmp_path / "config.json") == cfg
