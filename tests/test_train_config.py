"""Config resolution: defaults -> recipe -> TOML -> CLI, validation, help text, JSON round trip."""

from __future__ import annotations

import argparse
import json
import math
import re

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
        ({"cutout": -1}, "'cutout': must not be negative"),
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


def test_cutout_from_the_command_line_reaches_the_training_loader(tmp_path):
    from conftest import TINY_TRAIN
    from resnet.train.trainer import Trainer

    parser = argparse.ArgumentParser()
    train_options.add_arguments(parser)
    cfg = C.resolve({**TINY_TRAIN, **train_options.given_options(parser.parse_args(["--cutout", "4"]))})
    assert cfg.cutout == 4 and C.resolve(TINY_TRAIN).cutout == 0  # off unless asked for
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.run.loader.mixing.cutout == 4


def test_a_run_with_mixup_and_cutmix_trains_on_class_probabilities(tmp_path):
    from conftest import TINY_TRAIN
    from resnet.train import train

    parser = argparse.ArgumentParser()
    train_options.add_arguments(parser)
    given = train_options.given_options(parser.parse_args(["--mixup", "1", "--cutmix", "0.5"]))
    cfg = C.resolve({**TINY_TRAIN, **given, "iterations": 10, "eval_every": 10, "run_dir": str(tmp_path / "run")})
    assert (cfg.mixup, cfg.cutmix) == (1.0, 0.5)
    result = train(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["kind"] == "train"]
    assert train_records and all(math.isfinite(r["loss"]) and 0 <= r["train_error"] <= 1 for r in train_records)
    assert result.summary["iterations"] == 10
    assert C.load_json(tmp_path / "run" / "config.json").mixup == 1.0


def test_json_round_trip(tmp_path):
    cfg = C.resolve({"recipe": "cifar-paper", "data_dir": "/x", "iterations": 100})
    C.save_json(cfg, tmp_path / "config.json", extra={"milestone_steps": [50, 75]})
    assert C.load_json(tmp_path / "config.json") == cfg


# -- precedence: a given option always beats a recipe's default (issue 26) ---------------------------

# What each recipe needs besides itself to resolve at all.
NEEDS = {"digits": {}, "finetune": {"data_dir": "/x", "init": "w.pth"}}
# Each twin's value when given, and what it reads back as when switched off.
GIVEN = {"iterations": 7, "epochs": 2.0, "time_limit": 600.0, "warmup_iterations": 50, "warm_rule": "on"}
OFF = {"iterations": None, "epochs": None, "time_limit": None, "warmup_iterations": 0, "warm_rule": "off"}
TWIN_PAIRS = [
    ("iterations", "epochs"),
    ("time_limit", "iterations"),
    ("time_limit", "epochs"),
    ("warmup_iterations", "warm_rule"),
]
LENGTH = {"iterations", "epochs", "time_limit"}  # one of them sets the run's length


def _in_effect(cfg, name):
    return cfg.uses_warm_rule if name == "warm_rule" else getattr(cfg, name) != OFF[name]


def _resolve(recipe, cli, file_options, tmp_path):
    base = {"recipe": recipe, **NEEDS.get(recipe, {"data_dir": "/x"})}
    path = None
    if file_options:
        path = tmp_path / "run.toml"
        path.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in file_options.items()))
    return C.resolve({**base, **cli}, path)


def test_twin_options_cover_every_recipe_field_with_a_twin():
    assert [(a, b) for a, b, _ in C.TWINS] == TWIN_PAIRS
    # Each pair has one set by some recipe, so a given twin has a recipe's value to beat.
    assert all(any(name in r for r in C.RECIPES.values() for name in pair) for pair in TWIN_PAIRS)


@pytest.mark.parametrize("recipe", list(C.RECIPES))
@pytest.mark.parametrize("a, b", TWIN_PAIRS)
@pytest.mark.parametrize(
    "where, wins",
    [
        # where each twin is given ("cli", "file" or "" = not given) -> which one is in effect
        (("cli", ""), "a"),
        (("", "cli"), "b"),
        (("file", ""), "a"),
        (("", "file"), "b"),
        (("file", "cli"), "b"),
        (("cli", "file"), "a"),
        (("cli", "cli"), "refused"),
        (("file", "file"), "refused"),
    ],
)
def test_a_given_twin_beats_the_recipe_and_the_later_stage_wins(recipe, a, b, where, wins, tmp_path):
    cli = {name: GIVEN[name] for name, at in zip((a, b), where) if at == "cli"}
    file_options = {name: GIVEN[name] for name, at in zip((a, b), where) if at == "file"}
    if wins == "refused" and b in C.TOGETHER:  # the two warm-ups, which the schedule chains: both taken
        cfg = _resolve(recipe, cli, file_options, tmp_path)
        assert (getattr(cfg, a), getattr(cfg, b)) == (GIVEN[a], GIVEN[b])
        assert _in_effect(cfg, a) and _in_effect(cfg, b)
        return
    if wins == "refused":
        flags = f"{a}.*{b}".replace("_", "[-_]")
        with pytest.raises(ResNetError, match=f"{flags}.* both set the .*; give one of them") as e:
            _resolve(recipe, cli, file_options, tmp_path)
        assert "\n" not in str(e.value)
        return
    cfg = _resolve(recipe, cli, file_options, tmp_path)
    winner, loser = (a, b) if wins == "a" else (b, a)
    assert getattr(cfg, winner) == GIVEN[winner] and _in_effect(cfg, winner)
    assert not _in_effect(cfg, loser)  # switched off, or off already (the warm rule of shallow nets)
    # The other options stay the recipe's: only the twins may change (a time limit replaces any length).
    twins = LENGTH if {a, b} & LENGTH else {a, b}
    expected = {**C.recipe_defaults(recipe), **NEEDS.get(recipe, {"data_dir": "/x"})}
    assert {k: v for k, v in cfg.to_dict().items() if k not in twins} == {
        k: v for k, v in C._build(expected, {}, "test").to_dict().items() if k not in twins
    }


@pytest.mark.parametrize("recipe", list(C.RECIPES))
def test_given_length_and_validation_interval_are_what_the_run_uses(recipe):
    base = {"recipe": recipe, **NEEDS.get(recipe, {"data_dir": "/x"})}
    epochs = C.resolve({**base, "epochs": 4})
    assert (epochs.iterations, epochs.epochs) == (None, 4.0)  # build_run: ceil(4 x steps per epoch)
    iterations = C.resolve({**base, "iterations": 5, "eval_every": 3})
    assert (iterations.iterations, iterations.epochs, iterations.eval_every) == (5, None, 3)
    # Nothing given: the recipe's own length, untouched.
    plain = C.resolve(base)
    assert (plain.iterations, plain.epochs) == (
        C.RECIPES[recipe].get("iterations"),
        C.RECIPES[recipe].get("epochs", 15.0),
    )
    # --iterations none --epochs E (how benchmarks/time_to_accuracy.py asks for epochs) is no conflict.
    assert C.resolve({**base, "iterations": "none", "epochs": 2}).epochs == 2.0


def test_the_recipe_value_given_way_is_one_log_line(caplog):
    caplog.set_level("INFO", logger="resnet.train.config")
    C.resolve({"recipe": "imagenet-paper", "data_dir": "/x", "epochs": 4})
    C.resolve({"recipe": "cifar-fast", "data_dir": "/x", "warm_rule": "on"})
    C.resolve({"iterations": 40})  # TrainConfig's 15 epochs give way without a word
    deep = C.resolve({"recipe": "cifar-paper", "data_dir": "/x", "model": "resnet110", "warmup_iterations": 100})
    assert (deep.warmup_iterations, deep.warm_rule, deep.uses_warm_rule) == (100, "off", False)
    both = C.resolve({"warmup_iterations": 3, "warm_rule": "on"})  # as tests/test_train_resume.py runs
    assert (both.warmup_iterations, both.uses_warm_rule) == (3, True)
    assert [r.getMessage() for r in caplog.records] == [
        "the training length: --epochs 4 given, so recipe imagenet-paper's iterations 600000 is not used",
        "the warm-up: --warm-rule on given, so recipe cifar-fast's warmup_iterations 200 is not used",
        "the warm-up: --warmup-iterations 100 given, so recipe cifar-paper's warm_rule auto (on for depth >= 110) "
        "is not used",
        "the warm-up: --warmup-iterations 3 and --warm-rule on both given: the LR is --warm-lr while the warm "
        "rule holds; the linear warm-up counts from step 0 (its steps under the rule are at --warm-lr)",
    ]
    with pytest.raises(ResNetError, match=r"^option 'epochs': --iterations 5 and --epochs 1 both set the training"):
        C.resolve({"epochs": 1, "iterations": 5})


def test_a_data_folder_selects_the_image_folder_or_is_refused(tmp_path, caplog):
    caplog.set_level("INFO", logger="resnet.train.config")
    cfg = C.resolve({"data_dir": "/d"})
    assert (cfg.data, cfg.data_dir) == ("imagefolder", "/d")
    assert caplog.messages == ["--data-dir /d without --data: training on that image folder (--data imagefolder)"]
    f = tmp_path / "run.toml"
    f.write_text('data_dir = "/d"\n')
    assert C.resolve({}, f).data == "imagefolder"
    with pytest.raises(ResNetError, match="^option 'data-dir': --data digits is embedded and reads no folder"):
        C.resolve({"data": "digits", "data_dir": "/d"})
    # A recipe's own dataset takes the folder as it always did.
    assert C.resolve({"recipe": "cifar-paper", "data_dir": "/d"}).data == "cifar10"


@pytest.mark.parametrize(
    "cli, message",
    [
        (
            {"recipe": "imagenet-paper", "milestones": "0.3,0.6"},
            "option 'milestones': acts only with --schedule multistep, and the run has recipe imagenet-paper's "
            "schedule plateau: add --schedule multistep or drop --milestones",
        ),
        ({"recipe": "cifar-fast", "gamma": 0.5}, "'gamma': acts only with --schedule multistep or plateau"),
        ({"recipe": "cifar-paper", "plateau_patience": 5}, "'plateau-patience': acts only with --schedule plateau"),
        ({"recipe": "cifar-paper", "plateau_threshold": 0.01}, "'plateau-threshold': acts only with --schedule"),
        ({"recipe": "cifar-paper", "warm_lr": 0.02}, "'warm-lr': acts only with --warm-rule on"),
        ({"warm_until_error": 0.5}, "warm_rule auto (on for depth >= 110) for resnet20 (the default)"),
        ({"init_head": "reset"}, "'init-head': acts only with --init WEIGHTS, and the run has no --init"),
        ({"init_non_strict": True}, "'init-non-strict': acts only with --init WEIGHTS"),
        ({"schedule": "cosine", "milestones": "0.3,0.6"}, "the run has --schedule cosine"),
    ],
)
def test_an_option_without_effect_under_the_recipe_is_refused(cli, message):
    with pytest.raises(ResNetError, match=re.escape(message)):
        C.resolve({"data_dir": "/x", **cli} if "recipe" in cli else cli)


def test_options_that_act_are_taken():
    assert set(C.USED_ONLY_WITH) == {
        "milestones", "gamma", "plateau_patience", "plateau_threshold", "warm_lr", "warm_until_error",
        "init_head", "init_non_strict",
    }  # fmt: skip
    assert C.resolve({"recipe": "imagenet-paper", "data_dir": "/x", "gamma": 0.5}).gamma == 0.5  # plateau uses it
    assert C.resolve({"recipe": "imagenet-paper", "data_dir": "/x", "schedule": "multistep", "milestones": "0.3,0.6"})
    assert C.resolve({"model": "resnet110", "warm_lr": 0.02}).warm_lr == 0.02
    assert C.resolve({"init": "w.pth", "init_head": "reset"}).init_head == "reset"
    # A value equal to the one in effect asks for nothing (a config file may list every option).
    assert C.resolve({"schedule": "cosine", "milestones": "0.5,0.75", "gamma": 0.1}).schedule == "cosine"
