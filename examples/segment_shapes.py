"""DeepLabV3 on this project's dilated ResNet (output stride 8), trained on shapes: loss and mIoU measured.

    python examples/segment_shapes.py                                # ResNet-18 from scratch, 300 steps
    python examples/segment_shapes.py --init torchvision --steps 200   # from torchvision's ImageNet weights

Needs torchvision (not a dependency of the package). The set is made on the fly (examples/shapes.py):
each pixel is background, square or disk. It prints the training loss every 25 steps and, at the
end, the mean intersection over union of the three classes on held-out images, and one JSON line.
"""

from __future__ import annotations

import json
import time

import torch
from shapes import CLASSES, example_arguments, make_set, train
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

import resnet
from resnet.models import feature_info

MEAN, STD = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def build_segmenter(model: str = "resnet18", init: str | None = None) -> DeepLabV3:
    """The last stage dilated (output stride 8) under torchvision's DeepLabV3 head, as docs/transfer.md shows."""
    body = resnet.create_model(model, weights=init, output_stride=8)
    channels = feature_info(body)[-1].channels
    return DeepLabV3(
        IntermediateLayerGetter(body, return_layers={"layer4": "out"}), DeepLabHead(channels, num_classes=len(CLASSES))
    )


def confusion(predicted: torch.Tensor, truth: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.bincount(truth.flatten() * classes + predicted.flatten(), minlength=classes**2).view(classes, classes)


def main() -> None:
    args = example_arguments(__doc__.splitlines()[0])
    torch.manual_seed(args.seed)
    train_set, test = make_set(args.train_images, args.size, args.seed), make_set(args.test_images, args.size, 10**6)
    segmenter = build_segmenter(args.model, args.init).train()
    start = time.perf_counter()

    def loss_of(picks: list[int]) -> torch.Tensor:
        images = torch.stack([(train_set[i][0] - MEAN) / STD for i in picks])
        masks = torch.stack([train_set[i][3] for i in picks])
        return torch.nn.functional.cross_entropy(segmenter(images)["out"], masks)

    first, mean = train(segmenter.parameters(), loss_of, args)
    segmenter.eval()
    total = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.long)
    with torch.no_grad():
        for image, _, _, mask in test:
            predicted = segmenter(((image - MEAN) / STD)[None])["out"].argmax(1)[0]
            total += confusion(predicted, mask, len(CLASSES))
    iou = (total.diag() / (total.sum(0) + total.sum(1) - total.diag()).clamp_min(1)).tolist()
    result = {
        "model": args.model,
        "init": args.init,
        "steps": args.steps,
        "first_loss": first,
        "last_loss": mean,
        "iou": dict(zip(CLASSES, iou)),
        "miou": sum(iou) / len(iou),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(f"mIoU {100 * result['miou']:.1f}% ({', '.join(f'{k} {100 * v:.1f}%' for k, v in result['iou'].items())})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
