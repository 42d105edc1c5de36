"""Faster R-CNN with this project's ResNet as its FPN backbone, trained on shapes: loss and mAP@0.5 measured.

    python examples/detect_shapes.py                               # ResNet-18 from scratch, 300 steps
    python examples/detect_shapes.py --init torchvision --steps 200  # from torchvision's ImageNet weights

Needs torchvision (not a dependency of the package: `pip install torchvision` next to a matching
torch). The set is made on the fly (examples/shapes.py): squares and disks on noisy backgrounds,
boxes known exactly. It prints the training loss every 25 steps and, at the end, mAP@0.5 on
held-out images (all-points interpolated AP, as PASCAL VOC from 2010 on), and one JSON line.
"""

from __future__ import annotations

import json
import math
import time

import torch
from shapes import CLASSES, example_arguments, make_set, train
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import box_iou

import resnet
from resnet.models import feature_info


def build_detector(model: str = "resnet18", init: str | None = None, size: int = 128) -> FasterRCNN:
    """This project's network as the body of torchvision's FPN backbone, as docs/transfer.md shows."""
    # Published weights: frozen BN as torchvision's detectors; from scratch BN has to learn.
    body = resnet.create_model(model, weights=init, norm_layer="frozen_bn" if init else "bn")
    info = feature_info(body)
    backbone = BackboneWithFPN(
        body,
        return_layers={f.name: str(i) for i, f in enumerate(info)},
        in_channels_list=[f.channels for f in info],
        out_channels=128,
    )
    # Shapes are 21 to 42 pixels wide on 128-pixel images: anchors one octave per FPN level from 16.
    anchors = AnchorGenerator(sizes=((16,), (32,), (64,), (128,), (256,)), aspect_ratios=((1.0,),) * 5)
    return FasterRCNN(backbone, num_classes=len(CLASSES), rpn_anchor_generator=anchors, min_size=size, max_size=size)


def average_precision(predictions: list[dict], targets: list[dict], label: int, iou: float = 0.5) -> float:
    """AP of one class: detections sorted by score, each matched to the best unmatched box above ``iou``."""
    scored: list[tuple[float, bool]] = []
    positives = 0
    for p, t in zip(predictions, targets):
        truth = t["boxes"][t["labels"] == label]
        positives += len(truth)
        keep = p["labels"] == label
        boxes, scores = p["boxes"][keep], p["scores"][keep]
        order = scores.argsort(descending=True)
        overlaps = box_iou(boxes[order], truth) if len(truth) and len(boxes) else None
        matched = torch.zeros(len(truth), dtype=torch.bool)
        for k, i in enumerate(order.tolist()):
            hit = False
            if overlaps is not None:
                best = overlaps[k].masked_fill(matched, -1.0)
                j = int(best.argmax())
                hit = bool(best[j] >= iou)
                matched[j] |= hit
            scored.append((float(scores[i]), hit))
    if positives == 0:
        return math.nan
    scored.sort(key=lambda s: -s[0])
    hits = torch.tensor([h for _, h in scored], dtype=torch.float64)
    tp, fp = hits.cumsum(0), (1 - hits).cumsum(0)
    recall = torch.cat([torch.zeros(1), tp / positives, torch.ones(1)]).double()
    precision = torch.cat([torch.zeros(1), tp / (tp + fp).clamp_min(1), torch.zeros(1)]).double()
    for i in range(len(precision) - 2, -1, -1):  # the precision envelope
        precision[i] = max(precision[i], precision[i + 1])
    return float(((recall[1:] - recall[:-1]) * precision[1:]).sum())


def main() -> None:
    args = example_arguments(__doc__.splitlines()[0])
    torch.manual_seed(args.seed)
    train_set, test = make_set(args.train_images, args.size, args.seed), make_set(args.test_images, args.size, 10**6)
    detector = build_detector(args.model, args.init, args.size).train()
    start = time.perf_counter()

    def loss_of(picks: list[int]) -> torch.Tensor:
        images = [train_set[i][0] for i in picks]
        targets = [{"boxes": train_set[i][1], "labels": train_set[i][2]} for i in picks]
        return sum(detector(images, targets).values())  # type: ignore[return-value]

    first, mean = train([p for p in detector.parameters() if p.requires_grad], loss_of, args)
    detector.eval()
    with torch.no_grad():
        predictions = [detector([image])[0] for image, *_ in test]
    targets = [{"boxes": boxes, "labels": labels} for _, boxes, labels, _ in test]
    aps = {name: average_precision(predictions, targets, label) for label, name in enumerate(CLASSES) if label}
    result = {
        "model": args.model,
        "init": args.init,
        "steps": args.steps,
        "first_loss": first,
        "last_loss": mean,
        "ap50": aps,
        "map50": sum(aps.values()) / len(aps),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(f"mAP@0.5 {100 * result['map50']:.1f}% ({', '.join(f'{k} {100 * v:.1f}%' for k, v in aps.items())})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
