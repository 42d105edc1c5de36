"""Names for every network: ``build_model("resnet56", num_classes=100)`` and ``list_models()``.

Plain networks and option variants are the same builders with a different switch, never copies.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import nn

from resnet.errors import ResNetError
from resnet.models.backbone import BACKBONE_OPTIONS, BackboneOptions
from resnet.models.blocks import (
    SHORTCUTS,
    STRIDE_ON,
    BasicBlock,
    Block,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
)
from resnet.models.cifar import CifarResNet
from resnet.models.imagenet import ImageNetResNet

FAMILIES = ("imagenet", "cifar")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named network, and what a user may change about it."""

    name: str
    family: str  # "imagenet" (224x224 inputs, Table 1) or "cifar" (32x32 inputs, Section 4.2)
    build: Callable[..., nn.Module]
    defaults: dict[str, Any]
    description: str
    beyond_paper: bool = False
    options: frozenset[str] = field(default_factory=frozenset)

    @property
    def input_size(self) -> int:
        return 224 if self.family == "imagenet" else 32


_REGISTRY: dict[str, ModelSpec] = {}

_COMMON = {"num_classes", "in_channels"}
_RESIDUAL = _COMMON | {"shortcut", "stride_on", "zero_init_residual"}
_PLAIN = _COMMON | {"stride_on"}


def _register(
    name: str,
    family: str,
    build: Callable[..., nn.Module],
    defaults: dict[str, Any],
    description: str,
    *,
    beyond_paper: bool = False,
    extra_options: set[str] | None = None,
) -> None:
    residual = defaults.get("shortcut", "x") is not None
    options = (_RESIDUAL if residual else _PLAIN) | BACKBONE_OPTIONS | (extra_options or set())
    _REGISTRY[name] = ModelSpec(name, family, build, defaults, description, beyond_paper, frozenset(options))


IMAGENET_LAYERS: dict[int, tuple[type[Block], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
PREACT = {BasicBlock: PreActBasicBlock, Bottleneck: PreActBottleneck}
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)

for _depth, (_block, _layers) in IMAGENET_LAYERS.items():
    _imagenet = partial(ImageNetResNet, _block, _layers)
    _register(
        f"resnet{_depth}",
        "imagenet",
        _imagenet,
        {"num_classes": 1000, "shortcut": "B"},
        f"ResNet-{_depth} (Table 1), projection shortcuts where shapes change",
    )
    _register(
        f"plain{_depth}",
        "imagenet",
        _imagenet,
        {"num_classes": 1000, "shortcut": None},
        f"plain-{_depth}: ResNet-{_depth} with every shortcut removed",
    )
    _register(
        f"preact_resnet{_depth}",
        "imagenet",
        partial(ImageNetResNet, PREACT[_block], _layers),
        {"num_classes": 1000, "shortcut": "B"},
        f"pre-activation ResNet-{_depth} (He et al. 2016)",
        beyond_paper=True,
    )

for _name, _layers, _groups, _width in (
    ("resnext50_32x4d", (3, 4, 6, 3), 32, 4),
    ("resnext101_32x8d", (3, 4, 23, 3), 32, 8),
):
    # ResNeXt puts the stride on the grouped 3x3, as its authors' code and torchvision do.
    _register(
        _name,
        "imagenet",
        partial(ImageNetResNet, Bottleneck, _layers, groups=_groups, width_per_group=_width),
        {"num_classes": 1000, "shortcut": "B", "stride_on": "3x3"},
        f"ResNeXt (Xie et al. 2017), cardinality {_groups}, width {_width}",
        beyond_paper=True,
    )


def _cifar(depth: int, block: str = "basic", *, preact: bool = False, **options: Any) -> nn.Module:
    """The one CIFAR builder behind every CIFAR name, and the generic ``cifar_*`` entries."""
    blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
    if block not in blocks:
        raise ResNetError(f"block must be one of {', '.join(blocks)} (got {block!r})")
    block_type = blocks[block]
    return CifarResNet(depth, PREACT[block_type] if preact else block_type, **options)


for _depth in CIFAR_DEPTHS:
    _register(
        f"resnet{_depth}",
        "cifar",
        partial(_cifar, _depth),
        {"num_classes": 10, "shortcut": "A"},
        f"CIFAR ResNet-{_depth} (n={(_depth - 2) // 6}), option A shortcuts",
    )
    _register(
        f"plain{_depth}",
        "cifar",
        partial(_cifar, _depth),
        {"num_classes": 10, "shortcut": None},
        f"CIFAR plain-{_depth}: ResNet-{_depth} with every shortcut removed",
    )
for _depth, _block_name in ((20, "basic"), (56, "basic"), (110, "basic"), (164, "bottleneck"), (1001, "bottleneck")):
    _register(
        f"preact_resnet{_depth}",
        "cifar",
        partial(_cifar, _depth, _block_name, preact=True),
        {"num_classes": 10, "shortcut": "B" if _block_name == "bottleneck" else "A"},
        f"CIFAR pre-activation ResNet-{_depth} with {_block_name} blocks (He et al. 2016)",
        beyond_paper=True,
    )

_register(
    "cifar_resnet",
    "cifar",
    _cifar,
    {"num_classes": 10, "shortcut": "A", "block": "basic"},
    "CIFAR ResNet of any depth: depth=6n+2 (block='bottleneck': 9n+2)",
    extra_options={"depth", "block"},
)
_register(
    "cifar_plain",
    "cifar",
    _cifar,
    {"num_classes": 10, "shortcut": None, "block": "basic"},
    "CIFAR plain network of any depth 6n+2",
    extra_options={"depth", "block"},
)
_register(
    "cifar_preact_resnet",
    "cifar",
    partial(_cifar, preact=True),
    {"num_classes": 10, "shortcut": "A", "block": "basic"},
    "CIFAR pre-activation ResNet of any depth (He et al. 2016)",
    beyond_paper=True,
    extra_options={"depth", "block"},
)


def list_models(family: str | None = None, *, include_beyond_paper: bool = True) -> list[str]:
    """Every registered name, in a stable order (the registry's), optionally for one family."""
    if family is not None and family not in FAMILIES:
        raise ResNetError(f"family must be one of {', '.join(FAMILIES)} (got {family!r})")
    return [
        s.name
        for s in _REGISTRY.values()
        if (family is None or s.family == family) and (include_beyond_paper or not s.beyond_paper)
    ]


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered name, or a ResNetError that suggests the closest names."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ResNetError(f"unknown model {name!r}{hint}; valid: {', '.join(_REGISTRY)}") from None


def model_family(name: str) -> str:
    """``"imagenet"`` or ``"cifar"``: which input size and recipe a network was designed for."""
    return get_spec(name).family


def _check_options(spec: ModelSpec, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - spec.options)
    if unknown:
        if spec.defaults.get("shortcut", "x") is None and set(unknown) & {"shortcut", "zero_init_residual"}:
            raise ResNetError(
                f"{spec.name} is a plain network and has no shortcuts; "
                f"options {', '.join(unknown)} apply only to residual networks"
            )
        raise ResNetError(
            f"unknown option(s) {', '.join(unknown)} for {spec.name}; valid: {', '.join(sorted(spec.options))}"
        )
    for key in ("num_classes", "in_channels"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ResNetError(f"{key} must be a positive integer (got {value!r})")
    if "shortcut" in options and options["shortcut"] not in SHORTCUTS:
        raise ResNetError(f"shortcut must be one of {', '.join(SHORTCUTS)} (got {options['shortcut']!r})")
    if "stride_on" in options and options["stride_on"] not in STRIDE_ON:
        raise ResNetError(f"stride_on must be one of {', '.join(STRIDE_ON)} (got {options['stride_on']!r})")
    if "zero_init_residual" in options and not isinstance(options["zero_init_residual"], bool):
        raise ResNetError(f"zero_init_residual must be True or False (got {options['zero_init_residual']!r})")
    if "depth" in spec.options and "depth" not in options:
        raise ResNetError(f"{spec.name} needs depth=... (6n+2, e.g. 20, 56, 164)")


def build_model(name: str, **options: Any) -> nn.Module:
    """Build a network by name with the paper's defaults, overridden by ``options`` (random weights).

    Options: ``num_classes``, ``in_channels``, ``shortcut`` ("A", "B", "C"), ``stride_on``
    ("1x1", "3x3"), ``zero_init_residual``; the generic ``cifar_*`` builders also take ``depth`` and
    ``block``. A wrong name or option raises :class:`~resnet.errors.ResNetError` listing valid choices.

    Backbone keywords (``models.backbone``): ``output_stride`` (32, 16, 8: dilated last stages),
    ``norm_layer`` ("bn", "frozen_bn"), ``features_only`` and ``out_indices`` (stage numbers, e.g.
    ``(1, 2, 3, 4)`` for C2-C5): a feature extractor returning a list of maps.

    With pretrained weights: :func:`resnet.factory.create_model` (``resnet.create_model``).
    """
    spec = get_spec(name)
    _check_options(spec, options)
    backbone = BackboneOptions.pop_from(options, name=name, family=spec.family)
    model = spec.build(**{**spec.defaults, **options})
    return backbone.apply(model)
