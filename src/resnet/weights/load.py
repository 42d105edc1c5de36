"""Pretrained weights into networks: published names, other tools' weight files, our checkpoints.

``weights`` is one of

- a published name: ``"torchvision"`` / ``"torchvision-v2"`` (or ``"resnet50.torchvision"``), see
  :mod:`resnet.weights.published`; the file comes from the cache or is downloaded;
- a ``.pth`` / ``.safetensors`` file of torchvision's or timm's ResNets (same key names): a copy of a
  published file downloaded by hand (recognised by its name and checked against its hash), a file
  with its ``config.json`` beside it (as timm's and the Hub's folders hold it: its network, classes,
  normalisation and test view, read as for a Hub name), or a bare file, which does not say how its
  inputs were normalised (``info.normalization`` is None; ``model_from_weights`` then needs one given);
- one of this project's checkpoints (or run folders): its own model options, classes and normalisation;
- a Hugging Face Hub name, ``"hf-hub:timm/resnet50.a1_in1k"``: its config's network, classes, mean and
  std, and evaluation settings (``pretrained_cfg``), see :mod:`resnet.weights.hf_hub`.

Files are read without unpickling code (``torch.load(weights_only=True)`` or safetensors). Every
load is strict: a file for another network is one line naming the keys and shapes that differ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet.checkpoints import (
    Checkpoint,
    is_checkpoint,
    load_checkpoint,
    load_weights,
    read_state_dict,
    resolve_path,
)
from resnet.data.normalization import Normalization
from resnet.data.transforms import ImageNetView
from resnet.errors import ResNetError
from resnet.models.backbone import BackboneOptions
from resnet.models.registry import build_model, get_spec
from resnet.weights.fetch import fetch, read_hashed, verified_bytes
from resnet.weights.hf_hub import CONFIG, WeightsConfig, fetch_hub, is_hf_hub, read_config
from resnet.weights.imagenet_classes import IMAGENET_CLASSES
from resnet.weights.published import TAGS, PublishedWeights, find_by_file, find_published
from resnet.weights.shipped import find_shipped, load_shipped

logger = logging.getLogger(__name__)

# torchvision's normalisation, on the 0..1 scale: (x / 255 - mean) / std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def imagenet_normalization() -> Normalization:
    """torchvision's normalisation as the project's ``channel`` mode, whose statistics are on 0..255.

    ``(x / 255 - m) / s == (x - 255 m) / (255 s)``, so both are scaled by 255.
    """
    return Normalization("channel", torch.tensor(IMAGENET_MEAN) * 255, torch.tensor(IMAGENET_STD) * 255)


# The normalisations a caller may name for weights that carry none (a bare file without its config.json).
NORMALIZATION_NAMES = {"imagenet": imagenet_normalization}  # torchvision's, also timm's default


def named_normalization(normalization: Normalization | str) -> Normalization:
    """``"imagenet"`` (torchvision's mean and std), or a :class:`Normalization` as it is."""
    if isinstance(normalization, Normalization):
        return normalization
    if normalization not in NORMALIZATION_NAMES:
        raise ResNetError(
            f"normalization {normalization!r}: a name is one of {', '.join(NORMALIZATION_NAMES)}, "
            "else give a resnet.data.Normalization"
        )
    return NORMALIZATION_NAMES[normalization]()


def no_normalization(source: str | Path, explicit: str) -> ResNetError:
    """The one line for a weights file that says nothing about its input normalisation; ``explicit``:
    how the caller can give one instead."""
    return ResNetError(
        f"{source}: a bare weights file does not say how its inputs were normalised; put its {CONFIG} "
        f"(as timm and the Hugging Face Hub publish it) beside it, or {explicit}"
    )


EXPLICIT = (
    'give the normalisation explicitly (--normalization imagenet, in Python normalization="imagenet": '
    "torchvision's mean and std)"
)


@dataclass
class WeightsInfo:
    """What a network needs besides its weights: how to build it, its classes, its input normalisation."""

    name: str  # "resnet50.torchvision", or "<model>.<file stem>" for a file
    model: str
    model_options: dict[str, Any]  # create_model options the weights need, e.g. {"stride_on": "3x3"}
    classes: list[str] | None  # None: a file of another tool whose classes are unknown
    normalization: Normalization | None  # None: a bare file of another tool, which does not say
    source: Path  # the file the weights were read from
    # None: a network trained on image files with the ImageNet pipeline, so the test views are the
    # ImageNet ones (shorter side 256, centre 224), as for this project's own runs on image folders.
    image_size: tuple[int, int] | None = None
    protocol: str = "center"  # the evaluation view it was measured with (see resnet.data.transforms)
    published: PublishedWeights | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # a checkpoint's whole meta
    guessed: bool = False  # model_options guessed from another tool's file: the caller's options win
    view: ImageNetView | None = None  # the publisher's test crop (resize, crop, interpolation); None: the paper's

    @property
    def stride_on(self) -> str | None:
        """Where a downsampling bottleneck puts its stride: "3x3" for torchvision's; None: no bottlenecks."""
        return self.model_options.get("stride_on")

    def checkpoint_meta(self, model_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The meta of a checkpoint of these weights: what ``resnet predict`` and ``export`` read."""
        if self.normalization is None:
            raise no_normalization(self.source, EXPLICIT)
        options = {**self.model_options, **(model_options or {})}
        num_classes = options.get("num_classes") or get_spec(self.model).defaults.get("num_classes", 1000)
        classes = self.classes or [f"class {i}" for i in range(num_classes)]
        return {
            **self.extra,
            "model": self.model,
            "model_options": options,
            "classes": list(classes),
            "normalization": self.normalization.to_dict(),
            "image_size": list(self.image_size or ()) or None,
            "val_protocol": self.protocol,
            "weights": self.name,
            **({"eval_view": self.view.to_dict()} if self.view is not None else {}),
        }


def is_published_name(weights: str | Path) -> bool:
    """True for a name to look up in the table, False for a file (an existing path or a weights suffix)."""
    text = str(weights)
    if isinstance(weights, Path) or "/" in text or "\\" in text or text.endswith(FILE_SUFFIXES):
        return False
    return text.split(".")[-1] in TAGS or not Path(text).exists()


def _published_info(entry: PublishedWeights, path: Path) -> WeightsInfo:
    return WeightsInfo(
        entry.name,
        entry.model,
        dict(entry.options),
        list(IMAGENET_CLASSES),
        imagenet_normalization(),
        path,
        published=entry,
        view=ImageNetView(resize=entry.resize, crop=224),  # torchvision's: bilinear, centre 224
    )


def layout_options(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The architecture options a state dict of torchvision's or timm's layout was trained with: their
    bottleneck nets put a downsampling block's stride on the 3x3 (same keys as the paper's placement,
    another function), so a file with bottleneck blocks needs ``stride_on="3x3"``."""
    return {"stride_on": "3x3"} if any(k.endswith(".conv3.weight") for k in state) else {}


def _file_info(path: Path, model_name: str, state: dict[str, torch.Tensor]) -> WeightsInfo:
    """For another tool's bare file: torchvision and timm put a bottleneck's stride on the 3x3, and a
    1000-way classifier is ImageNet-1k's. Its normalisation is not guessed: None, for the caller to decide."""
    options = layout_options(state)
    fc = state.get("fc.weight")
    outputs = int(fc.shape[0]) if fc is not None and fc.ndim == 2 else None
    if outputs is not None and outputs != get_spec(model_name).defaults.get("num_classes"):
        options["num_classes"] = outputs
    classes = list(IMAGENET_CLASSES) if outputs == len(IMAGENET_CLASSES) else None
    logger.info(
        "%s: not a published file or a resnet checkpoint, and no %s beside it: torchvision's layout (%s), "
        "%s; its input normalisation is unknown",
        path,
        CONFIG,
        "stride on the 3x3" if options.get("stride_on") else "basic blocks",
        "ImageNet-1k classes" if classes else f"{outputs} unnamed classes",
    )
    return WeightsInfo(f"{model_name}.{path.stem}", model_name, options, classes, None, path, guessed=True)


def _with_config(
    name: str,
    where: str,
    model_name: str,
    config: WeightsConfig,
    source: Path,
    read: Callable[[], dict[str, torch.Tensor]],
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """Weights whose ``config.json`` (a Hub repository's, or one beside the file) says what they are; they
    are read (``read``) once the config is known to be for ``model_name``."""
    if config.architecture != model_name:
        raise ResNetError(f"{where} holds {config.architecture} weights, not {model_name}'s")
    state = read()
    # timm's configs name the network only: its layout puts the stride on the 3x3; ours give every option.
    options = {**(config.model_args or layout_options(state)), "num_classes": config.num_classes}
    return state, WeightsInfo(
        name,
        model_name,
        options,
        config.classes,
        config.normalization,
        source,
        config.image_size,
        config.protocol,
        extra={"pretrained_cfg": config.pretrained_cfg},
        view=config.view,
    )


# A release file named after its hash, as timm's and torchvision's are: NAME-<hex digits of its SHA-256>.EXT
_NAMED_HASH = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt|bin|safetensors)$")


def _named_hash_checked(path: Path) -> bytes:
    """The file's bytes, checked against the SHA-256 digits its name carries; without any, a note that
    nothing vouches for it (the load itself still accepts tensors only)."""
    data, digest = read_hashed(path)
    match = _NAMED_HASH.search(path.name)
    if match is None:
        logger.info("%s: not a published file and its name carries no SHA-256 digits: unverified", path)
        return data
    if not digest.startswith(match.group(1)):
        raise ResNetError(
            f"{path}: its name says SHA-256 {match.group(1)}..., its contents have {digest[:8]}... "
            "(a damaged or substituted file); download it again"
        )
    return data


def _checkpoint_weights(
    ckpt: Checkpoint, path: Path, model_name: str, name: str
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """A checkpoint of this project's: its weights, and its meta as the weights' info."""
    meta = ckpt.meta
    if meta["model"] != model_name:
        raise ResNetError(f"{path} is a {meta['model']} checkpoint, not {model_name}")
    info = WeightsInfo(
        name,
        model_name,
        dict(meta.get("model_options", {})),
        list(meta["classes"]),
        Normalization.from_dict(meta["normalization"]),
        path,
        tuple(meta["image_size"]) if meta.get("image_size") else None,
        meta.get("val_protocol", "single"),
        extra=dict(meta),
    )
    return ckpt.inference_weights(), info


def _load_file(path: Path, model_name: str) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    if not path.exists():
        raise ResNetError(f"weights file {path} does not exist")
    if path.is_dir() or is_checkpoint(path):
        path = resolve_path(path)
        return _checkpoint_weights(load_checkpoint(path), path, model_name, f"{model_name}.{path.stem}")
    entry = find_by_file(path.name)
    if entry is not None:  # a published file downloaded by hand: checked like a download
        if entry.model != model_name:
            raise ResNetError(f"{path} is {entry.name}'s file, not {model_name}'s")
        return read_state_dict(path, verified_bytes(path, entry)), _published_info(entry, path)

    def read() -> dict[str, torch.Tensor]:
        return read_state_dict(path, _named_hash_checked(path))

    beside = path.with_name(CONFIG)
    if beside.is_file():  # as timm's and the Hub's folders hold it: read as for a Hub name
        config, where = read_config(beside, str(path)), f"{path}, by its {CONFIG},"
        return _with_config(f"{model_name}.{path.stem}", where, model_name, config, path, read)
    state = read()
    return state, _file_info(path, model_name, state)


def _load_hub(spec: str, model_name: str) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    hub = fetch_hub(spec)
    return _with_config(spec, spec, model_name, hub.config, hub.weights, hub.state_dict)


def load_published(
    name: str | Path, model_name: str, *, cache_dir: str | Path | None = None, progress: bool = True
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """The state dict of ``name`` for ``model_name`` and what it needs: ``(state_dict, info)``.

    ``name``: ``"torchvision"``, ``"torchvision-v2"``, ``"resnet50.torchvision"``, or a file (see
    the module doc). Build the matching network with ``create_model(model_name, **info.model_options)``.
    A published file is taken from the cache, else downloaded (``progress``: a progress bar on a
    terminal). Errors are one-line :class:`ResNetError`\\ s.
    """
    get_spec(model_name)  # an unknown network fails here, with its did-you-mean
    if is_hf_hub(name):
        return _load_hub(str(name), model_name)
    shipped = find_shipped(name, model_name)
    if shipped is not None:  # trained by this project and shipped with it (resnet.weights.shipped)
        if shipped.model != model_name:
            raise ResNetError(f"weights {shipped.name} are for {shipped.model}, not {model_name}")
        return _checkpoint_weights(load_shipped(shipped), shipped.path, model_name, shipped.name)
    if not is_published_name(name):
        return _load_file(Path(name), model_name)
    entry = find_published(model_name, str(name))
    path = fetch(entry, cache_dir, progress=progress)
    return read_state_dict(path, verified_bytes(path, entry, cache_dir)), _published_info(entry, path)


def _hint(state: dict[str, torch.Tensor], model: nn.Module) -> str:
    """Why a file cannot load, where its keys say so: a ResNet variant's stem, another classifier size."""
    if "conv1.0.weight" in state:
        return (
            "; its conv1.0/conv1.1/... keys are a deep 3-convolution stem (timm's resnet*c/d/s/t and "
            "similar), which is not the paper's 7x7 stem this project builds"
        )
    fc, ours = state.get("fc.weight"), model.state_dict().get("fc.weight")
    if fc is not None and ours is not None and fc.shape[1:] == ours.shape[1:] and fc.shape[0] != ours.shape[0]:
        return (
            f"; the weights have {fc.shape[0]} classes: leave num_classes out, or fine-tune a new "
            "classifier on top of them"
        )
    return ""


def load_into(model: nn.Module, state: dict[str, torch.Tensor], info: WeightsInfo) -> None:
    """Load ``state`` into ``model`` strictly; a mismatch is one line naming keys and shapes."""
    where = f"{info.name} ({info.source})" if info.published else str(info.source)
    try:
        load_weights(model, state, name=info.model, where=where)
    except ResNetError as e:
        raise ResNetError(f"{e}{_hint(state, model)}") from None


def _check_options(name: str, needed: dict[str, Any], options: dict[str, Any]) -> None:
    for key, value in needed.items():
        if key in options and options[key] != value:
            raise ResNetError(
                f"weights {name} need {key}={value!r} (the network they were trained as), "
                f"got {key}={options[key]!r}; leave {key} out"
            )


def create_pretrained(
    model_name: str, weights: str | Path, *, cache_dir: str | Path | None = None, progress: bool = True, **options: Any
) -> nn.Module:
    """``create_model(model_name, weights=...)``: the network the weights need, with them loaded. The input
    normalisation is the caller's business here (a bare file need not say it)."""
    model, _, _ = pretrained_model(model_name, weights, cache_dir=cache_dir, progress=progress, **options)
    return model.train()


def pretrained_model(
    model_name: str, weights: str | Path, *, cache_dir: str | Path | None = None, progress: bool = True, **options: Any
) -> tuple[nn.Module, WeightsInfo, dict[str, Any]]:
    """The network with ``weights`` loaded, in eval mode, what the weights carry, and the options it was
    built with."""
    get_spec(model_name)
    if is_published_name(weights) and find_shipped(weights, model_name) is None:
        entry = find_published(model_name, str(weights))  # a conflict is known before anything is downloaded
        _check_options(entry.name, entry.options, options)
    state, info = load_published(weights, model_name, cache_dir=cache_dir, progress=progress)
    if not info.guessed:
        _check_options(info.name, info.model_options, options)
    merged = {**info.model_options, **options}
    # Backbone options (dilation, frozen BN, features_only) keep or drop keys: load the whole net first.
    backbone = BackboneOptions.pop_from(merged, name=model_name, family=get_spec(model_name).family)
    model = build_model(model_name, **merged)
    load_into(model, state, info)
    model = backbone.apply(model)
    if info.published is not None:
        logger.info(
            "%s: ImageNet acc@1 %.3f%% acc@5 %.3f%% (%s), from %s",
            info.name,
            info.published.acc1,
            info.published.acc5,
            TAGS[info.published.tag],
            info.source,
        )
    return model.eval(), info, merged


def model_from_weights(
    model_name: str,
    weights: str | Path,
    *,
    normalization: Normalization | str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """The network with ``weights`` loaded, in eval mode, and a checkpoint-style meta (classes,
    normalisation, input size) for ``resnet predict`` / ``resnet export``.

    ``normalization`` (``"imagenet"`` or a :class:`Normalization`) replaces the one the weights carry; a
    bare file without its ``config.json`` carries none, and without it is one line saying so.
    """
    explicit = named_normalization(normalization) if normalization is not None else None
    model, info, merged = pretrained_model(model_name, weights, cache_dir=cache_dir, progress=progress, **options)
    if explicit is not None:
        info = replace(info, normalization=explicit)
    return model, info.checkpoint_meta(merged)
