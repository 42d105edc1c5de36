"""``--init``: start a run from trained weights instead of random ones (fine-tuning, transfer).

:func:`resolve_init` reads the weights and what they carry: a run folder (its best checkpoint, else
its last), one of our checkpoints, a plain ``.safetensors`` file, a ``.pth`` state dict of torchvision
or timm (``torch.load(weights_only=True)``: tensors only, no pickled code), a published name or a Hub
name (from :mod:`resnet.weights`). Our checkpoints, published and Hub weights, and a file with its
``config.json`` beside it also carry their class names, input normalisation and test view; a bare
state dict only its layout, so ``--normalization init`` refuses it in one line.

:func:`apply_init` loads every tensor that fits, keeps the fresh classifier when the classes differ,
and reports exactly which tensors were loaded, re-initialised and ignored. A mismatch anywhere else is
an error naming the keys, unless ``non_strict``. The trainer applies it at step 0 only: a resumed run
takes every weight from its own checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet import checkpoints as ck
from resnet.errors import ResNetError
from resnet.train.freeze import HEAD, is_head
from resnet.weights.hf_hub import CONFIG, WeightsConfig, fetch_hub, is_hf_hub, read_config
from resnet.weights.shipped import find_shipped, read_checkpoint

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
HEAD_MODES = ("auto", "load", "reset")


def resolve_init(spec: str, model_name: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights ``spec`` names, and ``info``: ``source``, ``kind`` (run, checkpoint, state_dict, published,
    shipped or hub), ``path``, and where known ``model``, ``classes``, ``normalization`` (a
    :meth:`Normalization.to_dict`) and ``view`` (the weights' test view, an :meth:`ImageNetView.to_dict`).
    ``model_name``: the network being built (a weights file is checked against it)."""
    if is_hf_hub(spec):
        return _hub(spec, model_name)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not any((path / name).is_file() for name in (ck.BEST, ck.LAST)):
            raise ResNetError(
                f"--init {spec}: the folder holds no checkpoint ({ck.BEST} or {ck.LAST}); "
                "give a run folder, a checkpoint, a .pth state dict or a published name"
            )
        return _from_checkpoint(spec, path, "run")
    if path.is_file():
        if ck.is_checkpoint(path):
            return _from_checkpoint(spec, path, "checkpoint")
        return _weights_file(spec, path, model_name)
    if "/" in spec or "\\" in spec or path.suffix in _WEIGHT_SUFFIXES:
        raise ResNetError(f"--init {spec}: no such file or run folder")
    if find_shipped(spec) is not None:
        return _from_checkpoint(spec, spec, "shipped")
    return _published(spec, model_name)


def _from_checkpoint(spec: str, path: Path | str, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    checkpoint, file = read_checkpoint(path)
    meta = checkpoint.meta
    info = {
        "source": spec,
        "kind": kind,
        "path": str(file.resolve()),
        "model": meta.get("model"),
        "classes": meta.get("classes"),
        "normalization": meta.get("normalization"),
        "step": meta.get("step"),
        "model_options": meta.get("model_options") or {},
        "image_size": meta.get("image_size"),  # (H, W) it was trained at, for networks of in-memory images
        "view": meta.get("eval_view"),
    }
    return checkpoint.inference_weights(), info


def _weights_info(spec: str, kind: str, weights: Any) -> dict[str, Any]:
    """What :mod:`resnet.weights` read about the weights (a ``WeightsInfo``), as ``--init`` keeps it."""
    return {
        "source": spec,
        "kind": kind,
        "path": str(weights.source),
        "model": weights.model,
        "classes": weights.classes,
        "normalization": weights.normalization.to_dict() if weights.normalization is not None else None,
        "model_options": dict(weights.model_options),
        "image_size": list(weights.image_size) if weights.image_size else None,
        "view": weights.view.to_dict() if weights.view is not None else None,
    }


def _weights_file(spec: str, path: Path, model_name: str | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Another tool's file, read as ``create_model(weights=...)`` reads it: a published file by its name, one
    with its config.json beside it, or a bare state dict (taken to be in torchvision's/timm's layout)."""
    from resnet.weights.load import load_published

    try:
        state, weights = load_published(path, model_name or "")
    except ResNetError as e:
        raise ResNetError(f"--init: {e}") from None
    if weights.published is not None:
        return state, _weights_info(spec, "published", weights)
    info = _weights_info(spec, "state_dict", weights)
    if weights.guessed:  # its layout is all a bare state dict says: not its network, classes or normalisation
        info.update(model=None, classes=None, guessed=True)
    return state, info


def _published_module() -> Any:
    """:mod:`resnet.weights`, or None where this version ships without it."""
    try:
        import resnet.weights as weights
    except ModuleNotFoundError as e:
        if e.name != "resnet.weights":
            raise
        return None
    return weights


def _is_file_spec(spec: str) -> bool:
    path = Path(spec).expanduser()
    return path.exists() or "/" in spec or "\\" in spec or path.suffix in _WEIGHT_SUFFIXES


def published_entry(spec: str) -> Any:
    """The published weights a ``--init`` names with their network (``resnet18``, ``resnet18.torchvision``,
    ``resnet50.torchvision-v2``: timm's ``model.tag``; a published file downloaded by hand, by its file name),
    else None (another file, a run folder, or a tag alone such as ``torchvision``, which is for the
    ``--model`` given, or a name the table does not know: loading it says why)."""
    weights = _published_module()
    if weights is None or spec in weights.TAGS:
        return None
    if _is_file_spec(spec):
        path = Path(spec).expanduser()
        return weights.find_by_file(path.name) if path.is_file() else None
    try:
        return weights.find_by_name(spec)
    except ResNetError:
        return None


def _config_beside(spec: str) -> WeightsConfig | None:
    """The config.json beside a weights file ``spec`` (not one of our checkpoints, whose meta says it all)."""
    path = Path(spec).expanduser()
    config = path.with_name(CONFIG)
    if not path.is_file() or not config.is_file() or ck.is_checkpoint(path):
        return None
    return read_config(config, f"--init {spec}")


def _named_network(spec: str) -> tuple[str, str] | None:
    """The network ``--init spec`` names itself, and what names it; None where the weights do not say."""
    if is_hf_hub(spec):
        return fetch_hub(spec).config.architecture, "the network its config names"
    shipped = find_shipped(spec)
    if shipped is not None:
        return shipped.model, f"the network of {shipped.name}"
    entry = published_entry(spec)
    if entry is not None:
        return str(entry.model), f"the network of {entry.name}"
    config = _config_beside(spec)
    return (config.architecture, f"the network its {CONFIG} names") if config is not None else None


def init_network(model: str, default_model: str, spec: str | None) -> str:
    """The network to build for ``--init spec``: the one the weights name (published, Hub, a file's
    config.json) when ``model`` is ``default_model`` (``--model`` left at the recipe's), said in a log line;
    ``model`` otherwise."""
    named = _named_network(spec) if spec else None
    if named is None or named[0] == model or model != default_model:
        return model
    logger.info("--init %s: building %s, %s (--model was left at the recipe's %s)", spec, named[0], named[1], model)
    return named[0]


def _hub(spec: str, model_name: str | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A Hugging Face Hub name: its config's network, classes, normalisation and build options."""
    from resnet.weights.load import load_published

    architecture = fetch_hub(spec).config.architecture
    if model_name and model_name != architecture:
        raise ResNetError(
            f"--init {spec}: its weights are for {architecture}, not {model_name}; "
            f"give --model {architecture} or leave --model out"
        )
    state, weights = load_published(spec, architecture)
    return state, _weights_info(spec, "hub", weights)


def _published(name: str, model_name: str | None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    weights_module = _published_module()
    if weights_module is None:
        raise ResNetError(
            f"unknown weights {name!r}: not a file or run folder, and this version knows no "
            "published weights; give a run folder, a checkpoint or a .pth state dict"
        )
    entry = published_entry(name)
    if entry is not None:  # the name says which network: resnet18, resnet18.torchvision
        if model_name and model_name != entry.model:
            raise ResNetError(
                f"--init {name}: {entry.name} are weights for {entry.model}, not {model_name}; "
                f"give --model {entry.model} or leave --model out"
            )
        model_name = entry.model
    state, weights = weights_module.load_published(entry.name if entry else name, model_name or "")
    return state, _weights_info(name, "published", weights)


# Options that change the function a set of weights computes: the network is built the way they were trained.
ARCHITECTURE_OPTIONS = ("stride_on", "shortcut")


def init_model_options(info: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """``chosen`` plus the architecture options the weights were trained with (torchvision's bottleneck
    nets: ``stride_on="3x3"``); an explicit option that contradicts them is a one-line error, except for
    options only guessed from a bare state dict's layout, where the explicit option wins."""
    options = dict(chosen)
    for key in ARCHITECTURE_OPTIONS:
        theirs = (info.get("model_options") or {}).get(key)
        if theirs is None or (info.get("guessed") and key in options):
            continue
        if key in options and options[key] != theirs:
            raise ResNetError(
                f"option '{key.replace('_', '-')}': --init {info['source']} was trained with "
                f"{key.replace('_', '-')} {theirs}, not {options[key]}; leave the option out"
            )
        options[key] = theirs
    return options


def _what(info: dict[str, Any]) -> str:
    model = f", {info['model']} weights" if info.get("model") else ""
    return f"--init {info['source']} ({info['kind']}{model})"


def _head_decision(
    expected: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    info: dict[str, Any],
    classes: list[str] | None,
    mode: str,
) -> tuple[bool, str]:
    """Whether the file's classifier is loaded, and why (or why not)."""
    keys = [k for k in expected if is_head(k) and not k.endswith("num_batches_tracked")]
    fits = all(k in state and state[k].shape == expected[k].shape for k in keys)
    weight = state.get(f"{HEAD}.weight")
    theirs = f"{weight.shape[0]} classes" if weight is not None and weight.ndim == 2 else "no classifier"
    ours = f"{expected[f'{HEAD}.weight'].shape[0]} classes" if f"{HEAD}.weight" in expected else "?"
    if mode == "reset":
        return False, "--init-head reset"
    if mode == "load":
        if not fits:
            raise ResNetError(
                f"{_what(info)}: its classifier has {theirs}, the data has {ours}; --init-head load "
                "needs the same classes (--init-head auto or reset re-initialises the classifier)"
            )
        return True, "--init-head load"
    if not fits:
        return False, f"the weights have {theirs}, the data has {ours}"
    named = info.get("classes")
    if named is not None and classes is not None and list(named) != list(classes):
        return False, f"other classes: {ck.listed(list(named), 3)} vs {ck.listed(list(classes), 3)}"
    return True, "same classes" if named is not None and classes is not None else "same shape"


def apply_init(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    info: dict[str, Any],
    *,
    classes: list[str] | None = None,
    head: str = "auto",
    non_strict: bool = False,
    model_name: str = "the model",
) -> dict[str, Any]:
    """Load ``state`` into ``model`` as :mod:`resnet.train.warm_start` describes; the report says what happened."""
    if head not in HEAD_MODES:
        raise ResNetError(f"option 'init-head': {head!r} is not one of {', '.join(HEAD_MODES)}")
    expected = model.state_dict()
    load_head, why = _head_decision(expected, state, info, classes, head)
    problems = ck.state_mismatch(expected, state, skip=is_head)  # only the classifier may differ
    if problems and not non_strict:
        raise ResNetError(
            f"{_what(info)} does not fit {model_name}: {problems}; only the classifier "
            f"({HEAD}) may differ, unless --init-non-strict"
        )
    loaded = {
        k: state[k]
        for k in expected
        if k in state and state[k].shape == expected[k].shape and (load_head or not is_head(k))
    }
    broken = ck.nonfinite_keys(loaded)
    if broken:  # training from them would stop at step 1 with a NaN loss and a hint about the LR
        raise ResNetError(
            f"{_what(info)}: {len(broken)} of its tensors hold NaN or infinite values (e.g. {broken[0]}); "
            "these weights are unusable"
        )
    model.load_state_dict(loaded, strict=False)
    reinitialised = [
        k for k in expected if k not in loaded and not (k.endswith("num_batches_tracked") and k not in state)
    ]
    ignored = [k for k in state if k not in loaded]
    report = {key: info[key] for key in ("source", "kind", "path", "model", "step") if info.get(key) is not None}
    report.update(
        loaded=len(loaded),
        of=len(expected),
        reinitialised=reinitialised,
        ignored=ignored,
        head=("loaded" if load_head else "re-initialised") + f" ({why})",
    )
    logger.info(init_summary(report))
    logger.debug("loaded from --init: %s", ", ".join(loaded))
    return report


def init_summary(report: dict[str, Any]) -> str:
    """One line: what ``--init`` loaded, re-initialised and ignored (from :func:`apply_init`'s report)."""
    reinitialised, ignored = report["reinitialised"], report["ignored"]
    again = f" ({', '.join(reinitialised)})" if reinitialised else ""
    dropped = f" ({', '.join(ignored)})" if ignored else ""
    return (
        f"{_what(report)}: loaded {report['loaded']} of {report['of']} tensors; re-initialised "
        f"{len(reinitialised)}{again}; ignored {len(ignored)} from the file{dropped}; classifier {report['head']}"
    )


def input_size_note(info: dict[str, Any], train_size: tuple[int, int] | None, augment: str) -> str | None:
    """One line when the data's training input size is not the one the ``--init`` network was trained at:
    the size used, what it costs against the network's own, and how to change it (None where they agree)."""
    theirs = info.get("image_size")
    if not theirs or (train_size is not None and tuple(train_size) == tuple(theirs)):
        return None
    h, w = (int(v) for v in theirs)
    if train_size is None:  # image files, decoded per item
        used = "224x224 crops of the image files" if augment != "cifar" else "the image files at 256 px or more a side"
        cost = f" (about {224 * 224 / (h * w):.0f}x the pixels, and the time, of {h}x{w} per image)"
    else:
        used, cost = f"{train_size[0]}x{train_size[1]} images", ""
    return (
        f"--init {info['source']} was trained on {h}x{w} images; this run trains on {used}{cost}. To train at "
        f"{h}x{w}, resize the images to {h}x{w} first (a folder of same-size images up to 64 px is decoded "
        "once into memory)"
    )


def init_normalization(info: dict[str, Any]) -> dict[str, Any]:
    """The input normalisation stored with the weights (a :meth:`Normalization.to_dict`), which
    ``--normalization init`` takes; a bare state dict carries none, and is one line saying what to do."""
    norm = info.get("normalization")
    if isinstance(norm, dict) and "mode" in norm:
        return norm
    from resnet.weights.load import no_normalization

    raise no_normalization(
        f"--init {info['source']}",
        "give --normalization channel or pixel-mean (fitted on this run's data) instead of --normalization init",
    )
