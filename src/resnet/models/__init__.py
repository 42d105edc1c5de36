"""Every network of the paper, plus clearly labelled follow-ups, behind one registry."""

from resnet.models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut
from resnet.models.cifar import CifarResNet
from resnet.models.dilation import dilate
from resnet.models.features import FeatureExtractor, FeatureInfo, feature_info
from resnet.models.frozen_bn import FrozenBatchNorm2d, freeze_batchnorm
from resnet.models.imagenet import ImageNetResNet
from resnet.models.registry import ModelSpec, build_model, get_spec, list_models, model_family

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "FeatureExtractor",
    "FeatureInfo",
    "FrozenBatchNorm2d",
    "ImageNetResNet",
    "ModelSpec",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ZeroPadShortcut",
    "build_model",
    "dilate",
    "feature_info",
    "freeze_batchnorm",
    "get_spec",
    "list_models",
    "model_family",
]
