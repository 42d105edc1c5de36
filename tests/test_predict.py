"""`resnet predict`: image files in, the checkpoint's own class names and probabilities out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.cli import main
from resnet.data import Normalization, load_dataset
from resnet.evaluate import model_from_checkpoint


def test_predict_matches_the_model_on_the_same_pixels(trained_run, tmp_path, capsys):
    model, meta = model_from_checkpoint(trained_run)
    val = load_dataset("digits", val_split=meta["data"]["val_split"], split_seed=0).val
    paths = []
    for i in range(4):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(val.images[i, 0].numpy()).save(path)
        paths.append(str(path))
    assert main(["predict", str(trained_run), *paths, "--json", "--top", "3"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    norm = Normalization.from_dict(meta["normalization"])
    with torch.no_grad():
        expected = model(norm.apply(val.images[:4])).softmax(1)
    for r, probs, path in zip(results, expected, paths):
        assert r["image"] == path and len(r["top"]) == 3
        assert [t["index"] for t in r["top"]] == probs.topk(3).indices.tolist()
        assert [t["class"] for t in r["top"]] == [meta["classes"][t["index"]] for t in r["top"]]
        assert np.allclose([t["probability"] for t in r["top"]], probs.topk(3).values.numpy(), atol=1e-5)

    assert main(["predict", str(trained_run), paths[0]]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == paths[0] and len(text) == 6 and text[1].strip().startswith("1. ")


def test_unreadable_image_is_a_clear_error(trained_run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["predict", str(trained_run), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet: error: ") and str(bad) in err and "cannot decode" in err and err.count("\n") == 1
    assert main(["predict", str(trained_run), str(tmp_path / "missing.png")]) == 2
    assert f"image {tmp_path / 'missing.png'} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", str(trained_run)])  # no image: argparse usage error
