"""One typed config object per training run, from a recipe (:mod:`resnet.train.recipes`), TOML files, CLI flags.

Resolution order (later wins): :class:`TrainConfig` defaults (the ``digits`` recipe, the embedded
main job) -> the named recipe -> a TOML config file -> command-line flags. An option given (in the file
or as a flag) is never silently overridden: of two twin options (``iterations``/``epochs``, the
warm-up by steps or by rule) the one given at the later stage wins and switches the other off, in one
log line; given at the same stage, the two are refused (or, for the two warm-ups, which the schedule
chains, both taken in one log line). ``--data-dir`` without ``--data`` means
``--data imagefolder``. The resolved config is saved as JSON in every run folder, so a run can be
repeated or resumed from the folder alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from resnet.atomic_files import atomic_write
from resnet.data.loaders import AUGMENTS
from resnet.data.sources import DATASETS
from resnet.data.transforms import PROTOCOLS
from resnet.errors import ResNetError
from resnet.inference import PRECISIONS
from resnet.option_types import MAX_DEPTH, MAX_SEED, duration_seconds, val_split_value
from resnet.train.recipes import RECIPES
from resnet.train.time_limit import describe_duration

logger = logging.getLogger(__name__)


def _opt(default: Any, help: str, choices: tuple[str, ...] | None = None, group: str = "") -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "group": group})


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run, with its default and help text (shown by ``resnet train --help``)."""

    recipe: str = _opt("digits", "named preset the other defaults come from", group="recipe")

    # model
    model: str = _opt(
        "resnet20",
        "network name (see `resnet summary`); the generic cifar_resnet/cifar_plain need --depth",
        group="model",
    )
    depth: int | None = _opt(None, "depth of the generic cifar_resnet/cifar_plain (6n+2)", group="model")
    shortcut: str | None = _opt(
        None,
        "shortcut option (default: the family's: A for CIFAR nets, B for ImageNet nets)",
        ("A", "B", "C"),
        group="model",
    )
    stride_on: str | None = _opt(
        None, "where a downsampling bottleneck puts its stride (default: the model's)", ("1x1", "3x3"), group="model"
    )
    zero_init_residual: bool = _opt(
        False,
        "zero-init the last BN gamma of each residual branch (Goyal et al. 2017; beyond the paper)",
        group="model",
    )

    # data
    data: str = _opt("digits", "dataset", DATASETS, group="data")
    data_dir: str | None = _opt(None, "dataset folder (not needed for digits)", group="data")
    val_split: float | int | None = _opt(
        0.2,
        "validation images held out of the training set: a whole count "
        "(>= 1) or a fraction in (0, 1); 0: none; none: the source's own "
        "validation split",
        group="data",
    )
    split_seed: int = _opt(0, "seed of the train/validation split", group="data")
    train_subset: int | None = _opt(
        None,
        "train on this many of the training images only, a seeded random choice "
        "made after the validation images are held out (none: all of them)",
        group="data",
    )
    cache_dir: str | None = _opt(None, "where decoded datasets are cached (default: the data module's)", group="data")
    skip_bad_images: bool = _opt(False, "skip unreadable images instead of stopping", group="data")
    download: bool = _opt(False, "download the dataset if it is missing", group="data")
    augment: str = _opt(
        "none",
        "training augmentation: cifar = pad 4 + random crop + flip; imagenet = "
        "scale [256,480] + 224 crop + flip + PCA lighting",
        AUGMENTS,
        group="data",
    )
    cutout: int = _opt(
        0,
        "Cutout (beyond the paper; DeVries & Taylor 2017 use 16 on CIFAR-10): a square of this side in "
        "pixels, at a random centre of each training image and clipped at its border, set to the mean "
        "pixel after the crop and flip (0 = off)",
        group="data",
    )
    mixup: float = _opt(
        0.0,
        "mixup (beyond the paper; Zhang et al. 2018 use 1 on CIFAR-10): each training image blended with "
        "another of its batch, and its label with the other's, by a weight drawn from Beta(X, X) for "
        "each batch (0 = off)",
        group="data",
    )
    cutmix: float = _opt(
        0.0,
        "CutMix (beyond the paper; Yun et al. 2019 use 1 on CIFAR): a box of another image of the batch "
        "pasted into each training image, its area 1 - w with w drawn from Beta(X, X) for each batch, the "
        "labels weighted by area; with --mixup too, each batch takes one of the two at random (0 = off)",
        group="data",
    )
    normalization: str = _opt(
        "pixel-mean",
        "input normalisation: pixel-mean = the paper's per-pixel mean "
        "image subtracted; channel = per-channel mean/std; init = the one stored with the "
        "--init weights (channel statistics of this data when they carry none)",
        ("pixel-mean", "channel", "init"),
        group="data",
    )
    val_protocol: str = _opt("single", "evaluation protocol during training", PROTOCOLS, group="data")
    final_protocol: str = _opt("single", "evaluation protocol of the final evaluation", PROTOCOLS, group="data")
    workers: int = _opt(0, "data loading worker processes (for image files)", group="data")

    # optimisation
    iterations: int | None = _opt(
        None, "training length in iterations (optimizer steps); the LR milestones scale with it", group="optimisation"
    )
    epochs: float | None = _opt(
        15.0, "training length in epochs, used when --iterations is not set", group="optimisation"
    )
    time_limit: float | None = _opt(
        None,
        "end the whole run (data, training, validations, final test) within this time on this machine: "
        "its length is planned from the speed of its first steps, in place of --epochs/--iterations "
        "(e.g. 30m, 1.5h, 1h30m, 90s; a bare number is seconds)",
        group="optimisation",
    )
    batch_size: int = _opt(
        64,
        "global batch size: images per optimizer step summed over all processes (the LR is for this batch)",
        group="optimisation",
    )
    micro_batch: int | None = _opt(
        None,
        "images per forward pass and process; smaller than the per-process batch means gradient accumulation",
        group="optimisation",
    )
    lr: float = _opt(0.1, "base learning rate (SGD)", group="optimisation")
    momentum: float = _opt(0.9, "SGD momentum", group="optimisation")
    weight_decay: float = _opt(1e-4, "L2 weight decay", group="optimisation")
    wd_bn_bias: bool = _opt(
        True, "apply weight decay to BN parameters and biases too (the paper does)", group="optimisation"
    )
    label_smoothing: float = _opt(
        0.0, "label smoothing of the cross-entropy loss (beyond the paper)", group="optimisation"
    )
    ema_decay: float = _opt(
        0.0,
        "exponential moving average of the weights, evaluated and saved as best (0 = off; beyond the paper)",
        group="optimisation",
    )
    schedule: str = _opt(
        "multistep", "LR schedule", ("multistep", "plateau", "cosine", "linear", "constant"), group="optimisation"
    )
    milestones: tuple[float, ...] = _opt(
        (0.5, 0.75),
        "multistep: fractions of the training length at which the LR is multiplied by --gamma",
        group="optimisation",
    )
    gamma: float = _opt(0.1, "LR factor at each milestone or plateau", group="optimisation")
    warmup_iterations: int = _opt(
        0, "linear LR warm-up from 0 over this many iterations (beyond the paper)", group="optimisation"
    )
    plateau_patience: int = _opt(
        3, "plateau: evaluations without improvement before the LR drops", group="optimisation"
    )
    plateau_threshold: float = _opt(
        0.001, "plateau: smallest drop in validation error that counts", group="optimisation"
    )
    warm_rule: str = _opt(
        "auto",
        "the paper's ResNet-110 rule: LR --warm-lr until the training error falls "
        "below --warm-until-error; auto = on for depth >= 110",
        ("auto", "on", "off"),
        group="optimisation",
    )
    warm_lr: float = _opt(0.01, "LR while the warm rule holds", group="optimisation")
    warm_until_error: float = _opt(
        0.8, "training error (fraction) below which the warm rule ends", group="optimisation"
    )

    # fine-tuning (src/resnet/train/warm_start.py and freeze.py)
    init: str | None = _opt(
        None,
        "start from these weights (applied at step 0 only): a run folder, a checkpoint, a "
        ".pth/.safetensors state dict or a published name",
        group="fine-tuning",
    )
    init_head: str = _opt(
        "auto",
        "the classifier of the --init weights: auto = load it when it fits the new classes "
        "(same class names where the weights name theirs, else same shape), else re-initialise "
        "it; load = it must load (a wrong class count is an error); reset = always "
        "re-initialise",
        ("auto", "load", "reset"),
        group="fine-tuning",
    )
    init_non_strict: bool = _opt(
        False,
        "allow --init weights that do not fit outside the classifier: missing or "
        "misshapen tensors keep their fresh initialisation, extra ones are ignored",
        group="fine-tuning",
    )
    freeze_until: str | None = _opt(
        None,
        "freeze the stem and every stage up to this one (conv1/stem, layer1, ...): "
        "their parameters are not trained and their BN layers stay in eval mode",
        group="fine-tuning",
    )
    freeze_bn: bool = _opt(
        False, "keep every BN layer in eval mode: running statistics are used, never updated", group="fine-tuning"
    )
    head_lr: str | None = _opt(
        None,
        "LR of the classifier: a multiple of --lr ('10x') or a number (the head's LR "
        "where the schedule is at --lr); it follows the same schedule",
        group="fine-tuning",
    )
    linear_probe: bool = _opt(
        False, "train the classifier only (the whole backbone frozen, BN in eval mode)", group="fine-tuning"
    )

    # evaluation, logging, checkpoints
    eval_every: int = _opt(0, "validate every N iterations (0 = once per epoch)", group="run")
    checkpoint_every: int = _opt(
        0, "save the 'last' checkpoint every N iterations (0 = at each validation)", group="run"
    )
    log_every: int = _opt(20, "iterations per metrics record (loss, error, LR, images/s)", group="run")
    seed: int = _opt(0, "seed of initialisation, data order and augmentation", group="run")
    run_dir: str | None = _opt(None, "run folder (default: <runs-root>/<model>-<data>-<timestamp>)", group="run")
    runs_root: str = _opt("runs", "parent of the default run folders", group="run")
    quiet: bool = _opt(False, "no progress bar: one log line per validation", group="run")
    tensorboard: bool = _opt(True, "also write TensorBoard event files (when tensorboard is installed)", group="run")

    # speed (no effect on the maths beyond float rounding)
    device: str = _opt("auto", "cpu, cuda, cuda:N or mps (auto: cuda if available)", group="speed")
    precision: str = _opt(
        "auto",
        "autocast precision (auto: bf16 on CUDA where supported, else fp32; native: "
        "as auto, plus bf16 on CPUs with bf16 kernels, AVX-512 and newer)",
        PRECISIONS,
        group="speed",
    )
    channels_last: str = _opt(
        "auto", "channels-last memory format (auto: on for CUDA)", ("auto", "on", "off"), group="speed"
    )
    compile: str = _opt(
        "auto",
        "torch.compile the training step (auto: decided after the first steps: compiled where the run is long "
        "enough for it to pay on this device and precision, and kept only if it is faster)",
        ("auto", "on", "off"),
        group="speed",
    )
    sync_bn: bool = _opt(False, "synchronise BN statistics across processes (DDP)", group="speed")
    dist_timeout: float = _opt(
        300.0,
        "seconds a process waits for the others in a collective (DDP) before the "
        "run stops with an error naming it; also their time to save on SIGTERM",
        group="speed",
    )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def replace(self, **changes: Any) -> TrainConfig:
        return _build(self.to_dict(), changes, source="option")

    @property
    def uses_warm_rule(self) -> bool:
        if self.warm_rule == "auto":
            return model_depth(self) >= 110
        return self.warm_rule == "on"


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def model_depth(cfg: TrainConfig) -> int:
    """The depth written in the model name (resnet110 -> 110) or given by --depth; 0 if unknown."""
    if cfg.depth is not None:
        return cfg.depth
    digits = "".join(ch for ch in cfg.model.split("_")[0] if ch.isdigit())
    return int(digits) if digits else 0


_HINTS = typing.get_type_hints(TrainConfig)


def base_type(name: str) -> type:
    """The non-None type of a field (``int | None`` -> int; ``tuple[float, ...]`` -> tuple)."""
    hint = _HINTS[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return tuple
    return args[0] if args else hint


def _coerce(name: str, value: Any, source: str) -> Any:
    hint = _HINTS[name]
    optional = type(None) in typing.get_args(hint)
    kind = base_type(name)
    where = f"{source} '{name.replace('_', '-')}'" if source == "option" else f"{source}: '{name}'"
    if value is None or (optional and isinstance(value, str) and value.lower() == "none"):
        if optional:
            return None
        raise ResNetError(f"{where} cannot be empty")
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "on", "off", "1", "0"):
                return value.lower() in ("true", "on", "1")
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(v) for v in items if str(v).strip())
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if name == "time_limit":
            return duration_seconds(value if not isinstance(value, bool) else str(value))
        if name == "val_split":
            return val_split_value(
                value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else str(value)
            )
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
            if not math.isfinite(number):
                raise argparse.ArgumentTypeError(f"must be a finite number, got {value!r}")
            return number
        if not isinstance(value, str):
            raise TypeError
        return value
    except argparse.ArgumentTypeError as e:
        raise ResNetError(f"{where}: {e}") from None
    except (TypeError, ValueError, OverflowError):
        raise ResNetError(f"{where} must be {_type_name(name)}, got {value!r}") from None


def _type_name(name: str) -> str:
    kind = base_type(name)
    return {bool: "true or false", tuple: "a list of numbers", int: "an integer", float: "a number"}.get(
        kind, "a string"
    )


def _validate(cfg: TrainConfig, source: str, final: bool) -> None:
    def bad(name: str, why: str) -> ResNetError:
        return ResNetError(f"{source} '{name.replace('_', '-')}': {why}")

    for f in fields(TrainConfig):
        choices = f.metadata["choices"]
        value = getattr(cfg, f.name)
        if choices and value is not None and value not in choices:
            raise bad(f.name, f"invalid choice {value!r} (choose from {', '.join(choices)})")
    if cfg.recipe not in RECIPES:
        raise bad("recipe", f"invalid choice {cfg.recipe!r} (choose from {', '.join(RECIPES)})")
    for name in ("batch_size", "log_every"):
        if getattr(cfg, name) < 1:
            raise bad(name, "must be at least 1")
    for name in ("micro_batch", "iterations", "train_subset"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise bad(name, "must be at least 1")
    if cfg.iterations is None and (cfg.epochs is None or cfg.epochs <= 0) and cfg.time_limit is None:
        raise bad("iterations", "set --iterations, a positive --epochs or --time-limit")
    for name in ("eval_every", "checkpoint_every", "warmup_iterations", "workers", "plateau_patience"):
        if getattr(cfg, name) < 0:
            raise bad(name, "must not be negative")
    for name in ("lr", "weight_decay", "momentum", "warm_lr", "plateau_threshold"):
        if getattr(cfg, name) < 0:
            raise bad(name, "must not be negative")
    if cfg.dist_timeout <= 0:
        raise bad("dist_timeout", "must be a positive number of seconds")
    for name in ("cutout", "mixup", "cutmix"):
        if getattr(cfg, name) < 0:
            raise bad(name, "must not be negative (0 = off)")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise bad("label_smoothing", "must be in [0, 1)")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise bad("ema_decay", "must be in [0, 1) (0 = off)")
    if not 0.0 < cfg.gamma <= 1.0:
        raise bad("gamma", "must be in (0, 1]")
    if any(not 0.0 < m < 1.0 for m in cfg.milestones) or list(cfg.milestones) != sorted(cfg.milestones):
        raise bad("milestones", "must be increasing fractions of the training length, each in (0, 1)")
    for name in ("seed", "split_seed"):
        if not 0 <= getattr(cfg, name) <= MAX_SEED:
            raise bad(name, f"must be in 0..{MAX_SEED}")
    if cfg.depth is not None and not 1 <= cfg.depth <= MAX_DEPTH:
        raise bad("depth", f"must be in 1..{MAX_DEPTH}")
    if not 0.0 < cfg.warm_until_error <= 1.0:
        raise bad("warm_until_error", "must be a training error fraction in (0, 1]")
    if cfg.head_lr is not None:
        from resnet.train.freeze import parse_head_lr

        try:
            parse_head_lr(cfg.head_lr)
        except ValueError as e:
            raise bad("head_lr", str(e)) from None
    if not final:  # the checks below involve several options; a later stage may still set the others
        return
    if cfg.normalization == "init" and not cfg.init:
        raise bad(
            "normalization",
            "'init' is the normalisation stored with the --init weights; set --init WEIGHTS "
            "or another --normalization (pixel-mean, channel)",
        )
    if cfg.linear_probe and cfg.freeze_until is not None:
        raise bad("freeze_until", "--linear-probe already freezes the whole backbone; drop one of the two")
    if cfg.data != "digits" and not cfg.data_dir and not cfg.download:
        raise bad("data_dir", f"--data {cfg.data} needs --data-dir DIR (or --download)")
    from resnet.models.registry import get_spec

    try:
        spec = get_spec(cfg.model)
    except ResNetError as e:
        raise bad("model", str(e)) from None
    if "depth" in spec.options and cfg.depth is None:
        raise bad("depth", f"--model {cfg.model} needs --depth (6n+2, e.g. 20)")
    if cfg.freeze_until is not None:
        from resnet.train.freeze import check_freeze_until

        try:
            check_freeze_until(cfg)
        except ValueError as e:
            raise bad("freeze_until", str(e)) from None
    if cfg.micro_batch is not None and cfg.micro_batch > cfg.batch_size:
        raise bad("micro_batch", f"{cfg.micro_batch} is larger than --batch-size {cfg.batch_size}")


def _build(base: dict[str, Any], changes: dict[str, Any], source: str, final: bool = True) -> TrainConfig:
    valid = field_names()
    merged = dict(base)
    for key, value in changes.items():
        name = key.replace("-", "_")
        if name not in valid:
            raise ResNetError(f"{source}: unknown option '{key}' (valid: {', '.join(valid)})")
        merged[name] = value
    merged = {k: _coerce(k, v, source) for k, v in merged.items()}
    cfg = TrainConfig(**merged)
    _validate(cfg, source, final)
    return cfg


def recipe_defaults(recipe: str) -> dict[str, Any]:
    if recipe not in RECIPES:
        raise ResNetError(f"unknown recipe {recipe!r} (choose from {', '.join(RECIPES)})")
    d = TrainConfig().to_dict()
    d.update(RECIPES[recipe])
    d["recipe"] = recipe
    return d


def read_toml(path: str | Path) -> dict[str, Any]:
    """Options from a TOML file: top-level keys named like the options (``batch_size`` or ``batch-size``)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ResNetError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ResNetError(f"config file {path} is not valid TOML: {e}") from None
    # Sections are only for readability: [optimisation] lr = 0.1 is the same as lr = 0.1.
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def resolve(cli: dict[str, Any] | None = None, config_file: str | Path | None = None) -> TrainConfig:
    """Defaults -> recipe -> TOML file -> CLI values (only the options actually given); then the twins
    settled (:func:`_settle`): a given option always beats a recipe's default."""
    cli = {k.replace("-", "_"): v for k, v in (cli or {}).items()}
    from_file = {k.replace("-", "_"): v for k, v in read_toml(config_file).items()} if config_file else {}
    recipe = cli.get("recipe") or from_file.get("recipe") or "digits"
    base = recipe_defaults(recipe)
    source = f"config file {config_file}" if config_file else "option"
    cfg = _build(base, from_file, source, final=False)
    cfg = _build(cfg.to_dict(), cli, "option", final=False)
    cfg = _settle(
        cfg, [Stage(f"recipe {recipe}", RECIPES.get(recipe, {})), Stage(source, from_file), Stage("option", cli)]
    )
    _validate(cfg, "option", final=True)
    return cfg


@dataclass(frozen=True)
class Stage:
    """One stage of :func:`resolve`: where its values come from, and the options it names."""

    source: str  # "recipe NAME", "config file PATH" or "option" (the command line)
    options: dict[str, Any]

    def describe(self, name: str, value: str) -> str:
        if self.source == "option":
            return f"--{name.replace('_', '-')} {value}"
        if self.source.startswith("recipe "):
            return f"{self.source}'s {name} {value}"
        return f"{name} = {value} in {self.source}"


# Twin options: two ways of setting one thing, so that one of them in effect silences the other (the
# run's length is --iterations when set, else --epochs; a linear warm-up beside the warm rule). Each
# with the value that switches it off.
TWINS: tuple[tuple[str, str, str], ...] = (
    ("iterations", "epochs", "the training length"),
    ("time_limit", "iterations", "the training length"),
    ("time_limit", "epochs", "the training length"),
    ("warmup_iterations", "warm_rule", "the warm-up"),
)
# Twins that, given at one stage, are both taken (the schedule chains them), with what that means.
TOGETHER = {
    "warm_rule": "the LR is --warm-lr while the warm rule holds; the linear warm-up counts from step 0 "
    "(its steps under the rule are at --warm-lr)"
}
_OFF: dict[str, Any] = {
    "iterations": None,
    "epochs": None,
    "time_limit": None,
    "warmup_iterations": 0,
    "warm_rule": "off",
}


def _in_effect(cfg: TrainConfig, name: str) -> bool:
    if name == "warm_rule":
        return cfg.uses_warm_rule
    return getattr(cfg, name) != _OFF[name]


def _shown(cfg: TrainConfig, name: str) -> str:
    value = getattr(cfg, name)
    if name == "warm_rule" and value == "auto":
        return "auto (on for depth >= 110)"
    if name == "time_limit":
        return describe_duration(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


# Options that only act through another one: given where that one leaves them without effect (a
# recipe's plateau schedule and --milestones), they are refused rather than ignored. Each with the
# test of being used and what it needs.
USED_ONLY_WITH: dict[str, tuple[Any, str]] = {
    "milestones": (lambda c: c.schedule == "multistep", "--schedule multistep"),
    "gamma": (lambda c: c.schedule in ("multistep", "plateau"), "--schedule multistep or plateau"),
    "plateau_patience": (lambda c: c.schedule == "plateau", "--schedule plateau"),
    "plateau_threshold": (lambda c: c.schedule == "plateau", "--schedule plateau"),
    "warm_lr": (lambda c: c.uses_warm_rule, "--warm-rule on"),
    "warm_until_error": (lambda c: c.uses_warm_rule, "--warm-rule on"),
    "init_head": (lambda c: c.init is not None, "--init WEIGHTS"),
    "init_non_strict": (lambda c: c.init is not None, "--init WEIGHTS"),
}
_DEPENDS_ON = {"milestones": "schedule", "gamma": "schedule", "plateau_patience": "schedule"}
_DEPENDS_ON.update(plateau_threshold="schedule", init_head="init", init_non_strict="init")


def _under(stages: list[Stage], at: int) -> TrainConfig:
    """The options as the stages before ``at`` leave them (a value equal to theirs asks for nothing)."""
    merged = TrainConfig().to_dict()
    for stage in stages[:at]:
        merged.update(stage.options)
    return _build(merged, {}, "option", final=False)


def _origin(cfg: TrainConfig, name: str, stages: list[Stage], stage_of: Any) -> str:
    """The option that leaves ``name`` without effect, and where its value comes from."""
    other = _DEPENDS_ON.get(name, "warm_rule")
    if other == "init":
        return "no --init"
    value = _shown(cfg, other) + (f" for {cfg.model}" if other == "warm_rule" else "")
    at = stage_of(other)
    return stages[at].describe(other, value) if at >= 0 else f"{other} {value} (the default)"


def _settle(cfg: TrainConfig, stages: list[Stage]) -> TrainConfig:
    """Of two twins in effect, the one from the later stage wins, the other is switched off (one log
    line when it came from a recipe or a file); from one stage they are refused. A --data-dir with the
    embedded digits selects the folder (--data imagefolder) unless --data digits was given."""

    def stage_of(name: str) -> int:  # -1: TrainConfig's default
        return max((i for i, stage in enumerate(stages) if name in stage.options), default=-1)

    for a, b, what in TWINS:
        if not (_in_effect(cfg, a) and _in_effect(cfg, b)):
            continue
        at_a, at_b = stage_of(a), stage_of(b)
        if at_a == at_b and at_a > 0:
            stage = stages[at_a]
            if stage.source == "option":
                where, pair = (
                    f"option '{b.replace('_', '-')}'",
                    f"{stage.describe(a, _shown(cfg, a))} and {stage.describe(b, _shown(cfg, b))}",
                )
            else:
                where, pair = stage.source, f"{a} = {_shown(cfg, a)} and {b} = {_shown(cfg, b)}"
            if b not in TOGETHER:
                raise ResNetError(f"{where}: {pair} both set {what}; give one of them")
            logger.info("%s: %s both given: %s", what, pair, TOGETHER[b])
            continue
        if at_a == at_b:
            continue  # a recipe's own pair, or the defaults: --iterations wins as documented
        (win, at_win), (lose, at_lose) = sorted(((a, at_a), (b, at_b)), key=lambda x: -x[1])
        if at_lose >= 0 or lose != "epochs":  # TrainConfig's 15 epochs give way to --iterations, as its help says
            logger.info(
                "%s: %s given, so %s is not used",
                what,
                stages[at_win].describe(win, _shown(cfg, win)),
                stages[at_lose].describe(lose, _shown(cfg, lose)),
            )
        cfg = dataclasses.replace(cfg, **{lose: _OFF[lose]})
    for name, (used, needs) in USED_ONLY_WITH.items():
        at = stage_of(name)
        if at > 0 and not used(cfg) and getattr(cfg, name) != getattr(_under(stages, at), name):
            flag = "--" + name.replace("_", "-")
            raise ResNetError(
                f"{stages[at].source} '{flag[2:]}': acts only with {needs}, and the run has "
                f"{_origin(cfg, name, stages, stage_of)}: add {needs} or drop {flag}"
            )
    if cfg.data == "digits" and cfg.data_dir is not None:
        at_dir = stages[stage_of("data_dir")]
        if stage_of("data") >= 0:
            raise ResNetError(
                f"{at_dir.source} 'data-dir': --data digits is embedded and reads no folder; "
                f"drop --data-dir or give --data imagefolder"
            )
        logger.info("--data-dir %s without --data: training on that image folder (--data imagefolder)", cfg.data_dir)
        cfg = dataclasses.replace(cfg, data="imagefolder")
    return cfg


def read_run_config(path: str | Path) -> tuple[TrainConfig, dict[str, Any]]:
    """The config saved in a run folder, and what the run resolved from it (its ``resolved`` dict)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ResNetError(f"cannot read run config {path}: {e}") from None
    resolved = d.pop("resolved", None) or {}
    return _build(recipe_defaults(d.get("recipe", "digits")), d, f"run config {path}"), resolved


def load_json(path: str | Path) -> TrainConfig:
    """The config saved in a run folder."""
    return read_run_config(path)[0]


def save_json(cfg: TrainConfig, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    d = cfg.to_dict()
    if extra:
        d["resolved"] = extra
    atomic_write(path, (json.dumps(d, indent=2) + "\n").encode())
