"""``resnet predict``: the top classes of image files, with names and probabilities.

A checkpoint carries everything needed: the network and its options, the class names, the
normalisation, the input size it was trained at and its evaluation protocol (single image for
CIFAR-style data, resize + centre crop for ImageNet-style data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet.errors import ResNetError
from resnet.evaluate import class_scores, model_from_checkpoint
from resnet.inference import prepare_for_inference


@torch.no_grad()
def predict(model: nn.Module, meta: dict[str, Any], images: list[str | Path], top: int = 5,
            device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """For each image: ``{"image", "top": [{"class", "index", "probability"}, ...]}``, most likely first."""
    from resnet.data import Normalization
    from resnet.data.transforms import load_image

    norm = Normalization.from_dict(meta["normalization"])
    size = tuple(meta["image_size"]) if meta.get("image_size") else None
    classes = meta["classes"]
    k = max(1, min(top, len(classes)))
    out = []
    for path in images:
        if not Path(path).is_file():
            raise ResNetError(f"image {path} does not exist")
        x = load_image(path, norm, protocol=meta.get("val_protocol", "single"), image_size=size,
                       in_channels=meta["model_options"].get("in_channels", 3))
        x = [v.to(device) for v in x] if isinstance(x, list) else x.to(device)
        probs = class_scores(model, x)[0]
        if not bool(torch.isfinite(probs).all()):
            raise ResNetError(f"image {path}: the network's outputs are NaN or infinite (its weights have diverged)")
        p, idx = probs.topk(k)
        out.append({"image": str(path), "top": [{"class": classes[i], "index": int(i), "probability": float(q)}
                                               for q, i in zip(p.tolist(), idx.tolist())]})
    return out


def run_predict_command(args: Any) -> int:
    from resnet.train.device import resolve_device

    device = resolve_device(args.device)
    model, meta = model_from_checkpoint(args.checkpoint, device)
    results = predict(prepare_for_inference(model, device, precision="fp32"), meta, args.images, args.top, device)
    if args.json:
        for r in results:
            print(json.dumps(r))
        return 0
    for r in results:
        print(r["image"])
        for rank, t in enumerate(r["top"], 1):
            print(f"  {rank}. {t['class']:<24} {100 * t['probability']:6.2f}%")
    return 0
