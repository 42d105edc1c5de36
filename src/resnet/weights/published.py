"""The published ImageNet weights this project can load: torchvision's, as data in one table.

Each entry is one file on download.pytorch.org, with what torchvision publishes about it (the
``IMAGENET1K_V1`` / ``IMAGENET1K_V2`` entries of its ``models/resnet.py`` weight enums): ImageNet-1k
top-1/top-5 accuracy of the centre 224 crop, parameters, file size, and the shorter side it resized
to before cropping (256 for V1, 232 for V2).

torchvision names each file after the first 8 hex digits of its SHA-256 (``resnet50-0676ba61.pth``)
and publishes no full digest, so those 8 digits are what a download is checked against, exactly as
``torch.hub``'s ``check_hash`` does.

Every torchvision ResNet puts a downsampling bottleneck's stride on the 3x3 ("v1.5"), not on the
first 1x1 as the paper does: ``options`` builds the network the weights were trained as.

The table is a module global read at call time, so tests can swap it (``monkeypatch.setattr``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from resnet.errors import ResNetError

TAGS = {"torchvision": "torchvision's IMAGENET1K_V1", "torchvision-v2": "torchvision's IMAGENET1K_V2"}

_PREFIX = re.compile(r"-([0-9a-f]{8,})\.[a-z]+$")

_V1_RECIPE = "https://github.com/pytorch/vision/tree/main/references/classification#resnet"
_V1X_RECIPE = "https://github.com/pytorch/vision/tree/main/references/classification#resnext"
_V2_RECIPE = "https://github.com/pytorch/vision/issues/3995#new-recipe"
_V3X3 = {"stride_on": "3x3"}


@dataclass(frozen=True)
class PublishedWeights:
    """One published weights file and what its publisher says about it."""

    model: str  # this project's name for the network, e.g. "resnet50"
    tag: str  # "torchvision" (V1) or "torchvision-v2"
    url: str
    acc1: float  # ImageNet-1k val top-1 accuracy (%), single centre 224 crop
    acc5: float
    params: int
    size_mb: float  # file size in MB (10^6 bytes)
    resize: int  # shorter side before the centre 224 crop in the publisher's evaluation
    recipe: str
    options: dict[str, Any] = field(default_factory=dict)  # create_model options the weights need

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def file(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def max_bytes(self) -> int:
        """The most bytes a download of this file may have: ``size_mb`` and a 5% margin."""
        return int(self.size_mb * 1e6 * 1.05)

    @property
    def sha256_prefix(self) -> str:
        match = _PREFIX.search(self.file)
        if match is None:
            raise ResNetError(f"{self.file}: no SHA-256 prefix in the file name (expected NAME-<8 hex>.pth)")
        return match.group(1)


def _tv(
    model: str,
    tag: str,
    file: str,
    acc1: float,
    acc5: float,
    params: int,
    size_mb: float,
    recipe: str,
    bottleneck: bool = True,
) -> PublishedWeights:
    return PublishedWeights(
        model,
        tag,
        f"https://download.pytorch.org/models/{file}",
        acc1,
        acc5,
        params,
        size_mb,
        256 if tag == "torchvision" else 232,
        recipe,
        dict(_V3X3) if bottleneck else {},
    )


PUBLISHED: tuple[PublishedWeights, ...] = (
    _tv("resnet18", "torchvision", "resnet18-f37072fd.pth", 69.758, 89.078, 11689512, 44.661, _V1_RECIPE, False),
    _tv("resnet34", "torchvision", "resnet34-b627a593.pth", 73.314, 91.420, 21797672, 83.275, _V1_RECIPE, False),
    _tv("resnet50", "torchvision", "resnet50-0676ba61.pth", 76.130, 92.862, 25557032, 97.781, _V1_RECIPE),
    _tv(
        "resnet50",
        "torchvision-v2",
        "resnet50-11ad3fa6.pth",
        80.858,
        95.434,
        25557032,
        97.790,
        "https://github.com/pytorch/vision/issues/3995#issuecomment-1013906621",
    ),
    _tv("resnet101", "torchvision", "resnet101-63fe2227.pth", 77.374, 93.546, 44549160, 170.511, _V1_RECIPE),
    _tv("resnet101", "torchvision-v2", "resnet101-cd907fc2.pth", 81.886, 95.780, 44549160, 170.530, _V2_RECIPE),
    _tv("resnet152", "torchvision", "resnet152-394f9c45.pth", 78.312, 94.046, 60192808, 230.434, _V1_RECIPE),
    _tv("resnet152", "torchvision-v2", "resnet152-f82ba261.pth", 82.284, 96.002, 60192808, 230.474, _V2_RECIPE),
    _tv(
        "resnext50_32x4d", "torchvision", "resnext50_32x4d-7cdf4587.pth", 77.618, 93.698, 25028904, 95.789, _V1X_RECIPE
    ),
    _tv(
        "resnext50_32x4d",
        "torchvision-v2",
        "resnext50_32x4d-1a0047aa.pth",
        81.198,
        95.340,
        25028904,
        95.833,
        _V2_RECIPE,
    ),
    _tv(
        "resnext101_32x8d",
        "torchvision",
        "resnext101_32x8d-8ba56ff5.pth",
        79.312,
        94.526,
        88791336,
        339.586,
        _V1X_RECIPE,
    ),
    _tv(
        "resnext101_32x8d",
        "torchvision-v2",
        "resnext101_32x8d-110c445d.pth",
        82.834,
        96.228,
        88791336,
        339.673,
        "https://github.com/pytorch/vision/issues/3995#new-recipe-with-fixres",
    ),
)


def list_published(model: str | None = None) -> list[PublishedWeights]:
    """Every published entry, in table order, optionally for one network."""
    return [w for w in PUBLISHED if model is None or w.model == model]


def find_published(model: str, tag: str) -> PublishedWeights:
    """The entry for ``model`` and ``tag`` (``"torchvision"``, ``"torchvision-v2"`` or ``"resnet50.torchvision"``).

    A wrong model or tag is a one-line :class:`ResNetError` that lists the valid ones.
    """
    if "." in tag:  # a full name: "resnet50.torchvision-v2"
        named, tag = tag.split(".", 1)
        if named != model:
            raise ResNetError(f"weights {named}.{tag} are for {named}, not {model}")
    for w in PUBLISHED:
        if w.model == model and w.tag == tag:
            return w
    tags = [w.tag for w in PUBLISHED if w.model == model]
    files = "or a .pth/.safetensors file"
    if not tags:
        models = ", ".join(dict.fromkeys(w.model for w in PUBLISHED))
        raise ResNetError(f"no published weights for {model}; published: {models} ({', '.join(TAGS)}), {files}")
    if tag in TAGS:
        raise ResNetError(f"{model} has no {tag} weights; valid for {model}: {', '.join(tags)}, {files}")
    close = difflib.get_close_matches(tag, tags, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ResNetError(f"unknown weights {tag!r} for {model}{hint}; valid: {', '.join(tags)}, {files}")


def find_by_name(name: str) -> PublishedWeights:
    """The entry called ``name``: ``"resnet50.torchvision-v2"`` (timm's ``model.tag``), or a network's
    name alone (``"resnet50"``): its first entry, torchvision's V1 weights. A did-you-mean error else."""
    for w in PUBLISHED:
        if w.name == name:
            return w
    for w in PUBLISHED:
        if w.model == name:
            return w
    names = [w.name for w in PUBLISHED]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ResNetError(f"unknown published weights {name!r}{hint}; valid: {', '.join(names)}")


def find_by_file(file_name: str) -> PublishedWeights | None:
    """The entry whose file is called ``file_name`` (a copy downloaded by hand), if any."""
    return next((w for w in PUBLISHED if w.file == file_name), None)
