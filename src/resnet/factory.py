"""``create_model(name, weights=...)``: the one way in, above the registry and the weights.

As timm's factory sits above its builder: the registry (:mod:`resnet.models.registry`) only builds
networks with random weights, :mod:`resnet.weights` finds and loads published or local weights, and
this module puts the two together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from resnet.errors import ResNetError
from resnet.models.registry import build_model
from resnet.weights.hf_hub import fetch_hub, is_hf_hub
from resnet.weights.load import create_pretrained


def create_model(name: str, *, weights: str | Path | None = None, **options: Any) -> nn.Module:
    """Build a network by name with the paper's defaults, overridden by ``options``.

    Options: ``num_classes``, ``in_channels``, ``shortcut`` ("A", "B", "C"), ``stride_on``
    ("1x1", "3x3"), ``zero_init_residual``; the generic ``cifar_*`` builders also take ``depth`` and
    ``block``. A wrong name or option raises :class:`~resnet.errors.ResNetError` listing valid choices.

    ``weights``: ``"torchvision"`` / ``"torchvision-v2"`` (published ImageNet weights, downloaded
    once into the cache), a ``.pth`` / ``.safetensors`` file (with the ``config.json`` beside it, where
    there is one, as timm's and the Hub's folders hold it) or a checkpoint: the network is built as the
    weights need it (torchvision's bottleneck nets: ``stride_on="3x3"``), see :mod:`resnet.weights`. The
    input normalisation is the caller's: a bare file does not say it, and none is guessed here.

    Backbone keywords (``models.backbone``): ``output_stride`` (32, 16, 8: dilated last stages),
    ``norm_layer`` ("bn", "frozen_bn"), ``features_only`` and ``out_indices`` (stage numbers, e.g.
    ``(1, 2, 3, 4)`` for C2-C5): a feature extractor returning a list of maps.

    ``name`` may be a Hugging Face Hub name, ``"hf-hub:timm/resnet50.a1_in1k"``: the network its
    config names, with its weights (needs the ``hub`` extra).
    """
    if is_hf_hub(name):
        if weights is not None:
            raise ResNetError(f"create_model({name!r}) brings its own weights; leave weights= out")
        return create_pretrained(fetch_hub(name).config.architecture, name, **options)
    if weights is not None:
        return create_pretrained(name, weights, **options)
    return build_model(name, **options)
