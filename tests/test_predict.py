"""`resnet predict`: image files in, the checkpoint's own class names and probabilities out."""

from __future__ import annotations

import csv
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


def test_predict_a_folder_recursively_with_csv(trained_run, tmp_path, capsys):
    model, meta = model_from_checkpoint(trained_run)
    val = load_dataset("digits", val_split=meta["data"]["val_split"], split_seed=0).val
    names = ["b/2.png", "a/1.png", "a/deeper/0.png", "c.PNG"]
    for i, name in enumerate(names):
        (tmp_path / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(val.images[i, 0].numpy()).save(tmp_path / "imgs" / name, format="PNG")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / ".hidden").mkdir()
    Image.fromarray(val.images[0, 0].numpy()).save(tmp_path / "imgs" / ".hidden" / "x.png")
    csv_path = tmp_path / "out" / "predictions.csv"
    assert (
        main(["predict", str(trained_run), str(tmp_path / "imgs"), "--json", "--top", "2", "--csv", str(csv_path)]) == 0
    )
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected_order = [str(tmp_path / "imgs" / n) for n in ("a/1.png", "a/deeper/0.png", "b/2.png", "c.PNG")]
    assert [r["image"] for r in results] == expected_order
    assert main(["predict", str(trained_run), *expected_order, "--json", "--top", "2"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == results  # same as file by file
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["image", "class_1", "probability_1", "class_2", "probability_2"]
    assert [r[0] for r in rows[1:]] == expected_order
    for row, r in zip(rows[1:], results):
        assert row[1::2] == [t["class"] for t in r["top"]]
        assert np.allclose([float(p) for p in row[2::2]], [t["probability"] for t in r["top"]], atol=1e-6)


def test_predict_an_empty_folder_is_a_clear_error(trained_run, tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    assert main(["predict", str(trained_run), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'empty'}: no image files" in err and ".png" in err
