"""With torchvision importable (its own environment: it cannot be imported next to the CPU wheel):
this project's ResNets inside torchvision's detectors and segmenters, and features equal to its own.

    python -m venv tv && tv/bin/pip install torch==2.14.1 torchvision==0.29.1 numpy pillow safetensors tqdm pytest
    PYTHONPATH=src tv/bin/python -m pytest -q tests/test_torchvision_integration.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from torchvision.models.detection import FasterRCNN, MaskRCNN  # noqa: E402
from torchvision.models.detection.backbone_utils import BackboneWithFPN  # noqa: E402

import resnet  # noqa: E402
from resnet.models import feature_info  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from detect_shapes import average_precision, build_detector  # noqa: E402
from segment_shapes import build_segmenter  # noqa: E402
from shapes import make_set  # noqa: E402


def _fpn(body: torch.nn.Module) -> BackboneWithFPN:
    info = feature_info(body)
    return BackboneWithFPN(
        body,
        return_layers={f.name: str(i) for i, f in enumerate(info)},
        in_channels_list=[f.channels for f in info],
        out_channels=256,
    )


def test_fpn_features_equal_torchvisions_backbone_with_the_same_weights():
    torch.manual_seed(0)
    ours = resnet.create_model("resnet50", stride_on="3x3").eval()  # torchvision's stride placement
    theirs = torchvision.models.resnet50().eval()
    theirs.load_state_dict(ours.state_dict())  # strict: the same names and shapes
    ours_fpn, theirs_fpn = _fpn(ours).eval(), _fpn(theirs).eval()
    theirs_fpn.fpn.load_state_dict(ours_fpn.fpn.state_dict())
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        a, b = ours_fpn(x), theirs_fpn(x)
    assert list(a) == list(b) == ["0", "1", "2", "3", "pool"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", [FasterRCNN, MaskRCNN])
def test_detectors_train_a_step_and_predict_with_our_backbone(kind):
    torch.manual_seed(0)
    model = kind(_fpn(resnet.create_model("resnet18")), num_classes=3, min_size=128, max_size=128)
    ((image, boxes, labels, mask),) = make_set(1, 128, seed=0)
    target = {"boxes": boxes, "labels": labels}
    if kind is MaskRCNN:
        target["masks"] = torch.stack([(mask == label).to(torch.uint8) for label in labels])
    model.train()
    losses = model([image], [target])
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    before = model.backbone.body.layer1[0].conv1.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.backbone.body.layer1[0].conv1.weight)  # the body learns
    model.eval()
    with torch.no_grad():
        prediction = model([image])[0]
    assert prediction["boxes"].shape[1] == 4 and len(prediction["scores"]) == len(prediction["labels"])


def test_the_examples_models_run_a_step():
    detector = build_detector("resnet18", size=128)
    ((image, boxes, labels, mask),) = make_set(1, 128, seed=1)
    assert torch.isfinite(sum(detector([image], [{"boxes": boxes, "labels": labels}]).values()))
    segmenter = build_segmenter("resnet18").train()
    out = segmenter(torch.randn(2, 3, 128, 128))["out"]
    assert out.shape == (2, 3, 128, 128)  # upsampled back from output stride 8
    torch.nn.functional.cross_entropy(out, torch.stack([mask, mask])).backward()


def test_average_precision_of_perfect_and_of_missing_detections():
    truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40]]), "labels": torch.tensor([1, 1])}]
    perfect = [{"boxes": truth[0]["boxes"], "labels": truth[0]["labels"], "scores": torch.tensor([0.9, 0.8])}]
    assert average_precision(perfect, truth, 1) == pytest.approx(1.0)
    shifted = [{"boxes": truth[0]["boxes"] + 30, "labels": truth[0]["labels"], "scores": torch.tensor([0.9, 0.8])}]
    assert average_precision(shifted, truth, 1) == 0.0
    half = [{"boxes": truth[0]["boxes"][:1], "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}]
    assert average_precision(half, truth, 1) == pytest.approx(0.5)
