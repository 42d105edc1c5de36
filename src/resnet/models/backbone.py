"""``create_model``'s backbone keywords: dilation, frozen BatchNorm and feature maps, applied in that order.

``create_model("resnet50", features_only=True, out_indices=(2, 3, 4), output_stride=16,
norm_layer="frozen_bn")`` builds the classifier, then dilates it (``dilation.dilate``), freezes its BNs
(``frozen_bn.freeze_batchnorm``) and wraps it (``features.FeatureExtractor``). Each keyword is checked
before anything is built, with a one-line error naming the valid values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from resnet.errors import ResNetError
from resnet.models.dilation import OUTPUT_STRIDES, dilate
from resnet.models.features import FeatureExtractor, check_out_indices
from resnet.models.frozen_bn import freeze_batchnorm

NORM_LAYERS = ("bn", "frozen_bn")
BACKBONE_OPTIONS = frozenset({"features_only", "out_indices", "output_stride", "norm_layer"})


@dataclass(frozen=True)
class BackboneOptions:
    features_only: bool = False
    out_indices: tuple[int, ...] | None = None  # None: every stage
    output_stride: int = 32
    norm_layer: str = "bn"

    @classmethod
    def pop_from(cls, options: dict[str, Any], *, name: str, family: str) -> BackboneOptions:
        """Remove the backbone keywords from ``options`` and check them for network ``name``."""
        mine = {k: options.pop(k) for k in BACKBONE_OPTIONS & set(options)}
        chosen = cls(**mine)
        if not isinstance(chosen.features_only, bool):
            raise ResNetError(f"features_only must be True or False (got {chosen.features_only!r})")
        if chosen.out_indices is not None:
            if not chosen.features_only:
                raise ResNetError("out_indices needs features_only=True")
            check_out_indices(chosen.out_indices, 4 if family == "imagenet" else 3)
        if chosen.output_stride != 32:
            if family != "imagenet":
                raise ResNetError(
                    f"output_stride applies only to ImageNet-family networks; {name} is a CIFAR "
                    "network (its stages are at strides 1, 2, 4)"
                )
            if isinstance(chosen.output_stride, bool) or chosen.output_stride not in OUTPUT_STRIDES:
                raise ResNetError(
                    f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))} (got {chosen.output_stride!r})"
                )
        if chosen.norm_layer not in NORM_LAYERS:
            raise ResNetError(f"norm_layer must be one of {', '.join(NORM_LAYERS)} (got {chosen.norm_layer!r})")
        return chosen

    def apply(self, model: nn.Module) -> nn.Module:
        """``model`` dilated and frozen in place as asked, wrapped as a feature extractor if asked."""
        if self.output_stride != 32:
            dilate(model, self.output_stride)
        if self.norm_layer == "frozen_bn":
            freeze_batchnorm(model)
        return FeatureExtractor(model, self.out_indices) if self.features_only else model
