"""Each weight is evaluated the way its publisher evaluates it: resize, crop and interpolation of its own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.checkpoints import validate_meta
from resnet.data import transforms as T
from resnet.data.normalization import Normalization
from resnet.errors import ResNetError
from resnet.evaluate import class_scores
from resnet.predict import iter_predictions, load_image
from resnet.weights import published
from resnet.weights.load import model_from_weights
from test_weights import DATA, _closed_port_url, _entry, cache  # noqa: F401 (the weights cache fixture)

NONE = Normalization("none")


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    return path


def test_the_views_follow_resize_crop_and_interpolation(photo):
    x = torch.from_numpy(np.asarray(Image.open(photo))).permute(2, 0, 1)
    v2 = T.ImageNetView(resize=232, crop=224)
    got = load_image(photo, NONE, protocol="center", view=v2)
    assert got.shape == (1, 3, 224, 224)
    torch.testing.assert_close(got[0], T.center_view(x, 232, 224).float() / 255, rtol=0, atol=0)
    paper = load_image(photo, NONE, protocol="center")
    assert not torch.equal(got, paper)  # 232 is not 256
    torch.testing.assert_close(paper[0], T.center_view(x, 256, 224).float() / 255, rtol=0, atol=0)
    bicubic = load_image(photo, NONE, protocol="center", view=dataclasses.replace(v2, interpolation="bicubic"))
    assert not torch.equal(bicubic, got)
    assert load_image(photo, NONE, protocol="ten-crop", view=T.ImageNetView(288, 256)).shape == (1, 10, 3, 256, 256)


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ({"resize": 200, "crop": 224}, "crop 224 is larger than the resized side 200"),
        ({"resize": 256, "crop": 224, "interpolation": "lanczos"}, "interpolation must be one of bilinear, bicubic"),
        ({"resize": 0}, "resize must be an integer in 1..4096"),
        ({"resize": 256, "bogus": 1}, "must be an object with resize, crop, interpolation"),
        ("256", "must be an object with resize, crop, interpolation"),
    ],
)
def test_a_bad_view_in_a_checkpoint_is_one_line(view, message):
    meta = {
        "model": "resnet20",
        "model_options": {"num_classes": 2},
        "classes": ["a", "b"],
        "normalization": {"mode": "none"},
        "eval_view": view,
    }
    with pytest.raises(ResNetError, match=message):
        validate_meta(meta, "x.safetensors")


def test_published_weights_carry_their_publishers_resize_into_predict(cache, photo, monkeypatch):  # noqa: F811
    entry = dataclasses.replace(_entry(_closed_port_url()), resize=232)  # as torchvision's V2 weights
    monkeypatch.setattr(published, "PUBLISHED", (entry,))
    cache.mkdir(parents=True)
    (cache / entry.file).write_bytes(DATA)
    model, meta = model_from_weights("resnet20", "torchvision")
    assert meta["eval_view"] == {"resize": 232, "crop": 224, "interpolation": "bilinear"}
    (result,) = iter_predictions(model, meta, [photo], top=3)
    norm = Normalization.from_dict(meta["normalization"])
    with torch.no_grad():
        want = class_scores(
            model,
            load_image(photo, norm, protocol=meta["val_protocol"], view=T.ImageNetView(232, 224)),
        )
    assert [t["index"] for t in result["top"]] == want[0].topk(3).indices.tolist()
    assert result["top"][0]["probability"] == pytest.approx(float(want[0].max()), rel=1e-6)
