"""Weights from the Hugging Face Hub: ``create_model("hf-hub:timm/resnet50.a1_in1k")``, as timm spells it.

A Hub repository of timm's holds ``config.json`` (the architecture, the number of classes, and the
``pretrained_cfg`` its publisher evaluates with: input size, crop fraction, interpolation, mean and
std) and ``model.safetensors`` (or ``pytorch_model.bin``). Both come through ``huggingface_hub``
(the optional ``hub`` extra), which keeps them in its own cache and honours ``HF_HUB_OFFLINE`` and
``HF_HUB_CACHE``. The network is the one the config names; its normalisation is the config's own
mean and std (some timm ResNets use 0.5 and 0.5), never a guess: a config without them is refused.
:func:`read_config` reads such a ``config.json`` wherever it lies: also beside a weights file that
was downloaded by hand (``resnet.weights.load``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resnet.checkpoints import read_state_dict, validate_meta
from resnet.data.normalization import Normalization
from resnet.data.transforms import INTERPOLATIONS, ImageNetView
from resnet.errors import ResNetError
from resnet.models.registry import get_spec
from resnet.weights.imagenet_classes import IMAGENET_CLASSES

PREFIX = "hf-hub:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INSTALL_HINT = "pip install 'deep-residual-learning[hub]' (from a source checkout: pip install -e '.[hub]')"


def is_hf_hub(name: object) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


CONFIG = "config.json"


@dataclass(frozen=True)
class WeightsConfig:
    """What a timm / Hub ``config.json`` says about the weights beside it."""

    architecture: str  # a registered network name
    num_classes: int
    classes: list[str] | None
    normalization: Normalization
    pretrained_cfg: dict[str, Any]  # the publisher's evaluation settings, as the config gives them
    model_args: dict[str, Any]  # build options the config gives (this project's own folders: all of them)
    image_size: tuple[int, int] | None = None  # this project's folders of small-image networks
    protocol: str = "center"
    view: ImageNetView | None = None  # the publisher's test crop, from pretrained_cfg


@dataclass(frozen=True)
class HubWeights:
    """One Hub repository's files and what its config says about them."""

    spec: str  # "hf-hub:timm/resnet50.a1_in1k" (optionally "@revision")
    config: WeightsConfig
    weights: Path

    def state_dict(self) -> dict[str, torch.Tensor]:
        return read_state_dict(self.weights)


class _Missing(Exception):
    """A file the repository does not have, or (``offline``) that is not cached while the Hub is unreachable."""

    def __init__(self, offline: bool) -> None:
        self.offline = offline


OFFLINE = "not in the local Hugging Face cache and the Hub cannot be reached (offline, or HF_HUB_OFFLINE=1)"


def _download(spec: str, repo_id: str, revision: str | None, filename: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        raise ResNetError(f"{spec}: Hub weights need huggingface_hub ({INSTALL_HINT})") from None
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision))
    except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: first
        raise _Missing(offline=True) from None
    except EntryNotFoundError:
        raise _Missing(offline=False) from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ResNetError(f"{spec}: cannot get {filename} from the Hugging Face Hub: {first}") from None


def _normalization(spec: str, config: dict[str, Any], cfg: dict[str, Any]) -> Normalization:
    if isinstance(config.get("resnet_normalization"), dict):  # this project's own folder: the exact value
        return Normalization.from_dict(config["resnet_normalization"])
    mean, std = cfg.get("mean"), cfg.get("std")
    valid = all(
        isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v)
        for v in (mean, std)
    )
    if not valid or any(s <= 0 for s in std):  # type: ignore[union-attr]  # a list here: `valid` checked it
        raise ResNetError(
            f"{spec}: its config.json gives no valid pretrained_cfg mean and std (three numbers "
            "each); without them its inputs cannot be normalised as its publisher did"
        )
    # The config's statistics are on the 0..1 scale; the project's channel mode is on 0..255.
    return Normalization("channel", torch.tensor(mean) * 255, torch.tensor(std) * 255)


def _view(spec: str, cfg: dict[str, Any]) -> ImageNetView | None:
    """timm's test view: centre ``input_size`` crop of the image resized to ``floor(crop / crop_pct)``."""
    if "input_size" not in cfg and "crop_pct" not in cfg:
        return None
    size, crop_pct = cfg.get("input_size", [3, 224, 224]), cfg.get("crop_pct", 0.875)
    interpolation = cfg.get("interpolation", "bilinear")
    if not (isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) for v in size)):
        raise ResNetError(f"{spec}: its pretrained_cfg input_size {size!r} is not [channels, height, width]")
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
        raise ResNetError(f"{spec}: its pretrained_cfg crop_pct {crop_pct!r} is not a fraction in (0, 1]")
    if interpolation not in INTERPOLATIONS:
        raise ResNetError(
            f"{spec}: its pretrained_cfg interpolation {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}"
        )
    return ImageNetView(resize=math.floor(size[-1] / crop_pct), crop=size[-1], interpolation=interpolation)


def read_config(path: Path, where: str) -> WeightsConfig:
    """The ``config.json`` at ``path`` (a Hub repository's, or one beside a weights file), checked as a
    checkpoint's metadata is; every error is one line that starts with ``where``."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ResNetError(f"{where}: its {CONFIG} is not readable JSON ({type(e).__name__})") from None
    if not isinstance(config, dict):
        raise ResNetError(f"{where}: its {CONFIG} is not a JSON object")
    if "architecture" not in config:
        raise ResNetError(f"{where}: its {CONFIG} names no architecture (timm's and the Hub's name the network)")
    architecture = config["architecture"]
    try:
        get_spec(str(architecture))
    except ResNetError:
        raise ResNetError(
            f"{where}: its architecture {architecture!r} is not one of this project's networks "
            "(timm's resnet*c/d/s/t variants have a deep stem, not the paper's)"
        ) from None
    cfg = config.get("pretrained_cfg") or {}
    if not isinstance(cfg, dict):
        raise ResNetError(f"{where}: its {CONFIG} pretrained_cfg is not an object")
    num_classes = config.get("num_classes", cfg.get("num_classes", 1000))
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ResNetError(f"{where}: its {CONFIG} gives num_classes {num_classes!r}")
    labels = config.get("label_names")
    if isinstance(labels, list) and len(labels) == num_classes and all(isinstance(c, str) for c in labels):
        classes: list[str] | None = labels
    else:
        classes = list(IMAGENET_CLASSES) if num_classes == len(IMAGENET_CLASSES) else None
    model_args = config.get("model_args") or {}
    if not isinstance(model_args, dict):
        raise ResNetError(f"{where}: its {CONFIG} model_args is not an object")
    normalization = _normalization(where, config, cfg)
    size = config.get("resnet_image_size")
    protocol = config.get("resnet_val_protocol", "center")
    # The same bounds as a checkpoint's metadata: a crafted config cannot ask for a 600,000-layer network.
    validate_meta(
        {
            "model": architecture,
            "model_options": {**model_args, "num_classes": num_classes},
            "classes": classes or [str(i) for i in range(num_classes)],
            "normalization": normalization.to_dict(),
            "image_size": size,
            "val_protocol": protocol,
        },
        where,
    )
    return WeightsConfig(
        str(architecture),
        num_classes,
        classes,
        normalization,
        dict(cfg),
        dict(model_args),
        tuple(size) if size else None,
        protocol,
        None if size else _view(where, cfg),  # small-image networks are tested at their own size
    )


def fetch_hub(spec: str) -> HubWeights:
    """The config and weights file of ``spec`` (from the Hugging Face cache, else downloaded)."""
    repo_id, _, revision = spec[len(PREFIX) :].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ResNetError(f"{spec}: a Hub name is hf-hub:OWNER/REPO (e.g. hf-hub:timm/resnet50.a1_in1k)")
    try:
        config_path = _download(spec, repo_id, revision or None, CONFIG)
    except _Missing as e:
        raise ResNetError(
            f"{spec}: {CONFIG} is {OFFLINE}"
            if e.offline
            else f"{spec}: the repository has no {CONFIG} (the architecture and evaluation settings of its weights)"
        ) from None
    config = read_config(config_path, spec)  # checked before the weights are downloaded
    offline = False
    for filename in WEIGHT_FILES:
        try:
            return HubWeights(spec, config, _download(spec, repo_id, revision or None, filename))
        except _Missing as e:
            offline = offline or e.offline
    names = " or ".join(WEIGHT_FILES)
    raise ResNetError(f"{spec}: {names} is {OFFLINE}" if offline else f"{spec}: the repository has no {names}")
