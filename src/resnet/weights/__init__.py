"""Pretrained weights: torchvision's published ImageNet weights, other tools' files, our checkpoints.

``create_model("resnet50", weights="torchvision")`` is the usual way in. Underneath::

    load_published(name, model_name, *, cache_dir=None, progress=True) -> (state_dict, WeightsInfo)
    create_pretrained(model_name, weights, *, cache_dir=None, progress=True, **options) -> nn.Module
    model_from_weights(model_name, weights, *, normalization=None, ...) -> (model in eval mode, checkpoint-style meta)
    pretrained_model(model_name, weights, ...) -> (model in eval mode, WeightsInfo, the options it was built with)
    list_published(model=None) -> [PublishedWeights]; find_published(model, tag); find_by_name(name); find_by_file(file)
    fetch(entry, cache_dir=None, progress=True) -> Path; cached_file(entry) -> Path | None

``WeightsInfo`` holds ``model_options`` (``{"stride_on": "3x3"}`` for torchvision's bottleneck
nets), ``classes`` (the 1000 ImageNet names), ``normalization`` (a ``channel``
:class:`~resnet.data.normalization.Normalization`; None for a bare file of another tool without its
``config.json`` beside it, which does not say it), ``stride_on``, ``source`` (the file), ``view`` (the
test view) and ``published`` (the table entry: URL, acc@1/acc@5, ...).
"""

from resnet.weights.fetch import cached_file, fetch, torch_hub_dir, weights_dir
from resnet.weights.imagenet_classes import IMAGENET_CLASSES
from resnet.weights.load import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    WeightsInfo,
    create_pretrained,
    imagenet_normalization,
    load_into,
    load_published,
    model_from_weights,
    pretrained_model,
)
from resnet.weights.published import TAGS, PublishedWeights, find_by_file, find_by_name, find_published, list_published

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TAGS",
    "PublishedWeights",
    "WeightsInfo",
    "cached_file",
    "create_pretrained",
    "fetch",
    "find_by_file",
    "find_by_name",
    "find_published",
    "imagenet_normalization",
    "list_published",
    "load_into",
    "load_published",
    "model_from_weights",
    "pretrained_model",
    "torch_hub_dir",
    "weights_dir",
]
