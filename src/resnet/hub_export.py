"""A trained network as a Hugging Face Hub folder: ``config.json``, ``model.safetensors``, ``README.md``.

The folder is laid out as timm's Hub repositories are, so it loads back by the same route as theirs
(``create_model("hf-hub:OWNER/REPO")`` once uploaded, see :mod:`resnet.weights.hf_hub`):

- ``config.json``: ``architecture`` (the network's name), ``num_classes``, ``label_names``,
  ``model_args`` (the options it was built with: shortcut, stride placement, ...) and
  ``pretrained_cfg`` (input size, mean, std, crop fraction, interpolation). The paper's per-pixel
  mean image has no mean/std equivalent: ``pretrained_cfg`` then gives its channel averages (what
  other tools can use), and ``resnet_normalization`` the exact value this project loads.
- ``model.safetensors``: the weights meant for evaluation (the EMA's when the run kept one).
- ``README.md``: a model card naming the network, its data, classes and preprocessing.

The folder is written beside its final place and renamed into it, so it is either whole or absent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from resnet.data.normalization import Normalization
from resnet.errors import ResNetError
from resnet.models import get_spec

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"


def hub_config(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint's network, from its metadata."""
    options = dict(meta["model_options"])
    num_classes = int(options.pop("num_classes"))
    channels = int(options.get("in_channels", 3))
    norm = Normalization.from_dict(meta["normalization"])
    if norm.mode == "channel":
        assert norm.mean is not None and norm.std is not None
        mean, std = (norm.mean / 255).tolist(), (norm.std / 255).tolist()
    elif norm.mode == "pixel-mean":  # (x - mean_image) / 255 == x/255 - mean_image/255, std 1
        assert norm.mean is not None
        mean, std = (norm.mean.mean(dim=(1, 2)) / 255).tolist(), [1.0] * channels
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    size = meta.get("image_size")
    side = get_spec(meta["model"]).input_size
    height, width = (int(size[0]), int(size[1])) if size else (side, side)
    # Trained on image files: resize the shorter side to 256, centre 224 (crop 0.875); on small images:
    # the whole image at its size.
    crop = 1.0 if size else 224 / 256
    return {
        "architecture": meta["model"],
        "num_classes": num_classes,
        "label_names": list(meta["classes"]),
        "model_args": options,
        "pretrained_cfg": {
            "input_size": [channels, height, width],
            "mean": mean,
            "std": std,
            "crop_pct": crop,
            "interpolation": "bilinear",
            "num_classes": num_classes,
        },
        "resnet_normalization": meta["normalization"],
        "resnet_image_size": list(size) if size else None,
        "resnet_val_protocol": meta.get("val_protocol", "single"),
    }


def _card(meta: dict[str, Any], config: dict[str, Any]) -> str:
    spec = get_spec(meta["model"])
    data = (meta.get("data") or {}).get("name", "unknown data")
    cfg = config["pretrained_cfg"]
    return f"""---
library_name: deep-residual-learning
tags: [image-classification, resnet]
---

# {meta["model"]}

{spec.description}, trained with this project (He et al. 2015, "Deep Residual Learning for Image
Recognition") on {data}: {config["num_classes"]} classes ({", ".join(config["label_names"][:10])}
{"..." if config["num_classes"] > 10 else ""}).

- Input: {cfg["input_size"][0]}x{cfg["input_size"][1]}x{cfg["input_size"][2]}, RGB scaled to 0..1, then
  `(x - mean) / std` with mean {[round(v, 4) for v in cfg["mean"]]}, std {[round(v, 4) for v in cfg["std"]]}
  (normalisation mode `{meta["normalization"]["mode"]}`; exactly: `resnet_normalization` in config.json).
- Options: {json.dumps(config["model_args"])}.

```python
import resnet
model = resnet.create_model("hf-hub:OWNER/REPO")  # after uploading this folder as OWNER/REPO
```
"""


def write_hub_folder(meta: dict[str, Any], weights: dict[str, torch.Tensor], folder: str | Path) -> Path:
    """Write the three files into ``folder`` (which must not exist yet, or be empty)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ResNetError(f"--output {folder}: exists and is not an empty folder; choose a new one")
    if not folder.parent.is_dir():
        raise ResNetError(f"--output {folder}: folder {folder.parent} does not exist")
    config = hub_config(meta)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(staging / WEIGHTS))
        (staging / CARD).write_text(_card(meta, config))
        if folder.exists():
            folder.rmdir()
        os.replace(staging, folder)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise ResNetError(f"--output {folder}: cannot write the Hub folder ({e.strerror or e})") from None
    return folder
