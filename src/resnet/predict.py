"""The top classes of image files (or of every image in folders), with names and probabilities.

A checkpoint carries everything needed: the network and its options, the class names, the
normalisation, the input size it was trained at and its evaluation protocol (the whole image at the
network's size for small-image data such as CIFAR, resize + centre crop for ImageNet-style data).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet.data import transforms as T
from resnet.data.images import decode_tensor, shown
from resnet.data.normalization import Normalization
from resnet.errors import ResNetError
from resnet.evaluate import class_scores


def image_paths(arguments: Iterable[str | Path]) -> list[str]:
    """The image files named: a file as given, a folder as every image under it (sorted, recursively)."""
    from resnet.data.images import IMAGE_EXTENSIONS, find_images

    paths: list[str] = []
    for arg in arguments:
        if Path(arg).is_dir():
            found = find_images(arg)
            if not found:
                raise ResNetError(
                    f"{arg}: no image files in this folder or below (names ending in {', '.join(IMAGE_EXTENSIONS)})"
                )
            paths += found
        else:
            paths.append(str(arg))
    return paths


def load_image(
    path: str | Path,
    normalization: Normalization,
    *,
    protocol: str = "single",
    image_size: tuple[int, int] | None = None,
    in_channels: int = 3,
    view: T.ImageNetView = T.PAPER_VIEW,
) -> torch.Tensor | list[torch.Tensor]:
    """One image file as the model's input: ``[1, C, H, W]``, ``[1, 10, C, H, W]`` (ten-crop) or a
    list of ``[1, C, H, W]`` (multi-scale), normalised by ``normalization``.

    ``image_size`` is the network's input size if it was trained on images of one small size (see
    :func:`test_views`); ``in_channels=1`` converts to grey as the digits are; ``view``: how the
    ImageNet views are cut (a checkpoint's ``eval_view``: published weights carry their publisher's).
    """
    T.check_protocol(protocol, image_size)
    x = T.to_channels(decode_tensor(path, min_side=T.decode_side(protocol, image_size, view)), in_channels)
    views = T.test_views(x, protocol, image_size=image_size, view=view)
    if isinstance(views, list):
        return [normalization.apply(v[None]) for v in views]
    return T.padded_views(normalization.apply(views[None]), protocol, image_size)


@torch.no_grad()
def iter_predictions(
    model: nn.Module,
    meta: dict[str, Any],
    images: Iterable[str | Path],
    top: int = 5,
    device: torch.device | str = "cpu",
) -> Iterator[dict[str, Any]]:
    """For each image, as it is classified: ``{"image", "top": [{"class", "index", "probability"}, ...]}``,
    most likely first."""
    norm = Normalization.from_dict(meta["normalization"])
    size = tuple(meta["image_size"]) if meta.get("image_size") else None
    view = T.ImageNetView.from_dict(meta.get("eval_view"))
    classes = meta["classes"]
    k = max(1, min(top, len(classes)))
    for path in images:
        if not Path(path).is_file():
            raise ResNetError(f"image {shown(path)} does not exist")
        x = load_image(
            path,
            norm,
            protocol=meta.get("val_protocol", "single"),
            image_size=size,
            in_channels=meta["model_options"].get("in_channels", 3),
            view=view,
        )
        x = [v.to(device) for v in x] if isinstance(x, list) else x.to(device)
        probs = class_scores(model, x)[0]
        if not bool(torch.isfinite(probs).all()):
            raise ResNetError(f"image {path}: the network's outputs are NaN or infinite (its weights have diverged)")
        p, idx = probs.topk(k)
        yield {
            "image": shown(path),  # printable and JSON-safe whatever the name's bytes
            "top": [
                {"class": classes[i], "index": int(i), "probability": float(q)}
                for q, i in zip(p.tolist(), idx.tolist())
            ],
        }


def predict(
    model: nn.Module, meta: dict[str, Any], images: list[str | Path], top: int = 5, device: torch.device | str = "cpu"
) -> list[dict[str, Any]]:
    """:func:`iter_predictions` as a list."""
    return list(iter_predictions(model, meta, images, top, device))


def csv_text(results: list[dict[str, Any]]) -> str:
    """One row per image: ``image, class_1, probability_1, ..., class_k, probability_k``."""
    k = max((len(r["top"]) for r in results), default=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image"] + [f"{col}_{i}" for i in range(1, k + 1) for col in ("class", "probability")])
    for r in results:
        writer.writerow([r["image"]] + [v for t in r["top"] for v in (t["class"], f"{t['probability']:.6f}")])
    return out.getvalue()
