"""What a fine-tuning run trains: frozen stages, frozen BatchNorm statistics, the classifier's own LR.

A network's parts, in forward order: the stem (``conv1``, its BN, the max pool), the stages ``layer1``,
``layer2``, ... and the classifier ``fc``; what lies between the last stage and ``fc`` (the
pre-activation networks' ``final_bn``, the pool) counts with the last stage. Frozen parameters get
``requires_grad=False`` and stay out of the optimizer (so weight decay cannot move them either). BN
layers whose statistics are frozen stay in eval mode whatever ``train()`` their parents get
(validation switches the model to eval and back), so they normalise with their running statistics
and never update them.
"""

from __future__ import annotations

import logging
import re
import types
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

HEAD = "fc"
STEM_NAMES = ("conv1", "stem")
_STAGE = re.compile(r"layer\d+")


def is_head(key: str) -> bool:
    """Whether a parameter or state-dict key belongs to the classifier."""
    return key.split(".", 1)[0] == HEAD


def parts(model: nn.Module) -> dict[str, list[nn.Module]]:
    """``{"stem": [...], "layer1": [...], ...}``: the modules before the classifier, by part, in forward order."""
    out: dict[str, list[nn.Module]] = {"stem": []}
    current = "stem"
    for name, child in model.named_children():
        if name == HEAD:
            continue
        if _STAGE.fullmatch(name):
            current = name
            out[current] = []
        out[current].append(child)
    return out


def freeze_choices(model: nn.Module) -> list[str]:
    """The valid values of ``--freeze-until`` for this network."""
    return [*STEM_NAMES, *(name for name in parts(model) if name != "stem")]


def check_freeze_until(cfg: Any) -> None:
    """ValueError naming the valid stages when ``cfg.freeze_until`` is not one of ``cfg.model``'s (built on
    the meta device: no memory, no time)."""
    from resnet.models import build_model

    options = {k: getattr(cfg, k) for k in ("depth", "shortcut", "stride_on") if getattr(cfg, k) is not None}
    with torch.device("meta"):
        model = build_model(cfg.model, **options)
    valid = freeze_choices(model)
    if cfg.freeze_until not in valid:
        raise ValueError(f"{cfg.freeze_until!r} is not a part of {cfg.model} (valid: {', '.join(valid)})")


def frozen_parts(model: nn.Module, freeze_until: str | None, linear_probe: bool) -> list[str]:
    """The parts (``stem``, ``layer1``, ...) whose parameters do not train."""
    names = list(parts(model))
    if linear_probe:
        return names
    if freeze_until is None:
        return []
    target = "stem" if freeze_until in STEM_NAMES else freeze_until
    if target not in names:
        raise ResNetError(
            f"option 'freeze-until': {freeze_until!r} is not a part of the model "
            f"(valid: {', '.join(freeze_choices(model))})"
        )
    return names[: names.index(target) + 1]


def _train_stays_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """``train()`` of a BN layer with frozen statistics: eval mode, whatever the parent asks for."""
    return nn.Module.train(self, False)


def keep_in_eval(module: nn.Module) -> None:
    """Keep ``module`` in eval mode through every later ``model.train()``: an instance-level ``train`` that
    parents call for their children (and that ``copy.deepcopy`` rebinds to the copy)."""
    module.train = types.MethodType(_train_stays_eval, module)  # type: ignore[method-assign]
    module.train(False)


def apply_freezing(
    model: nn.Module, freeze_until: str | None = None, linear_probe: bool = False, freeze_bn: bool = False
) -> dict[str, Any]:
    """Freeze the parts the options name and keep their BN layers (all BN layers with ``freeze_bn``) in
    eval mode. Call it before the optimizer and the DDP wrapper are built: both take only trainable
    parameters. Returns what was frozen, for the log and the run's metadata."""
    frozen = frozen_parts(model, freeze_until, linear_probe)
    by_part = parts(model)
    modules = [m for name in frozen for m in by_part[name]]
    for m in modules:
        m.requires_grad_(False)
    bn_scope = [model] if freeze_bn else modules
    bn_layers = [m for root in bn_scope for m in root.modules() if isinstance(m, _BatchNorm)]
    for bn in bn_layers:
        keep_in_eval(bn)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    report = {
        "frozen_parts": frozen,
        "trainable_params": trainable,
        "frozen_params": total - trainable,
        "bn_layers_in_eval": len(bn_layers),
    }
    if frozen or bn_layers:
        logger.info(
            "frozen: %s (%d of %d parameters train); BN statistics frozen in %d layers",
            ", ".join(frozen) or "no parameters",
            trainable,
            total,
            len(bn_layers),
        )
    return report


def parse_head_lr(text: str) -> tuple[str, float]:
    """``"10x"`` -> ("multiple", 10.0); ``"0.1"`` -> ("absolute", 0.1); ValueError for anything else."""
    raw = text.strip().lower()
    kind = "multiple" if raw.endswith("x") else "absolute"
    try:
        value = float(raw[:-1] if kind == "multiple" else raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"must be a multiple of --lr such as '10x' or a learning rate such as 0.1, got {text!r}")
    return kind, value


def head_lr_scale(head_lr: str | None, lr: float) -> float | None:
    """The classifier's LR as a multiple of the schedule's, or None when it has no LR of its own."""
    if head_lr is None:
        return None
    kind, value = parse_head_lr(head_lr)
    if kind == "multiple":
        return value
    if lr <= 0:
        raise ResNetError(
            f"option 'head-lr': an absolute head LR ({head_lr}) needs a positive --lr to scale "
            "with the schedule; give a multiple such as '10x'"
        )
    return value / lr
