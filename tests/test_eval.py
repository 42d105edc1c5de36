"""Top-1/top-5 error: the arithmetic, multi-view averaging, and `resnet eval` on a trained run and on other data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import TINY_TRAIN, make_cifar
from resnet.cli import main
from resnet.data import Normalization, load_dataset
from resnet.evaluate import evaluate, model_from_checkpoint


class _Fixed(nn.Module):
    """Logits are the input's first row: the test chooses the scores directly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, :]


def test_top1_top5_errors():
    scores = torch.full((3, 1, 1, 7), -10.0)
    scores[0, 0, 0, 2] = 5  # correct at top-1
    scores[1, 0, 0, 3], scores[1, 0, 0, 1] = 5, 4  # label 1 is second: top-5 hit, top-1 miss
    scores[2, 0, 0, :6] = torch.arange(6.0)  # label 6 is last: miss in both
    result = evaluate(_Fixed(), [(scores, torch.tensor([2, 1, 6]))])
    assert (result.top1_error, result.top5_error, result.images) == pytest.approx((2 / 3, 1 / 3, 3))


def test_views_are_averaged_as_probabilities():
    views = torch.zeros(1, 2, 1, 1, 2)
    views[0, 0, 0, 0] = torch.tensor([10.0, 0.0])  # view 1: class 0, very sure
    views[0, 1, 0, 0] = torch.tensor([0.0, 1.0])  # view 2: class 1, unsure
    result = evaluate(_Fixed(), [(views, torch.tensor([0]))])
    assert result.top1_error == 0.0  # mean softmax favours class 0 (mean logits would too, mean argmax would tie)
    expected = -torch.log(
        (torch.softmax(torch.tensor([10.0, 0.0]), 0) + torch.softmax(torch.tensor([0.0, 1.0]), 0))[0] / 2
    )
    assert result.loss == pytest.approx(float(expected))
    multi_scale = evaluate(_Fixed(), [([views[:, 0], views[:, 1]], torch.tensor([1]))])
    assert multi_scale.top1_error == 1.0 and multi_scale.loss == pytest.approx(
        -float(
            torch.log((torch.softmax(torch.tensor([10.0, 0.0]), 0) + torch.softmax(torch.tensor([0.0, 1.0]), 0))[1] / 2)
        )
    )


def test_eval_command_reproduces_the_runs_validation(trained_run, capsys):
    assert main(["eval", str(trained_run), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert got["split"] == "val" and got["images"] == summary["final"]["images"]
    assert got["top1_error"] == pytest.approx(summary["best"]["val_error"])
    assert main(["eval", str(trained_run / "last.safetensors")]) == 0
    assert "top-1 error" in capsys.readouterr().out


def test_eval_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet: error: ") and "holds no checkpoint" in err and err.count("\n") == 1


# -- evaluating on other data: classes by name, the folder's own splits, the network's geometry --------

CLASSES = ["cat", "dog", "frog"]


def _write_pngs(folder: Path, classes: list[str], per_class: int, seed: int, size: int = 16) -> None:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            pixels[..., CLASSES.index(name) if name in CLASSES else c] //= 4  # a colour cue per class
            Image.fromarray(pixels).save(folder / name / f"{i:02d}.png")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, data folder): ResNet-8 trained briefly on a flat folder of 16x16 PNGs (cat, dog, frog)."""
    from resnet.train import resolve, train

    base = tmp_path_factory.mktemp("folder_run")
    data = base / "data"
    _write_pngs(data, CLASSES, per_class=12, seed=0)
    train(
        resolve(
            {
                **TINY_TRAIN,
                "data": "imagefolder",
                "data_dir": str(data),
                "cache_dir": str(base / "cache"),
                "val_split": 0.25,
                "batch_size": 9,
                "iterations": 8,
                "eval_every": 8,
                "log_every": 4,
                "run_dir": str(base / "run"),
            }
        )
    )
    return base / "run", data


def _direct(run: Path, images: torch.Tensor, labels: list[int]) -> tuple[float, float]:
    """(top-1 error, loss) of the checkpoint's network on uint8 images at its own size, computed here."""
    model, meta = model_from_checkpoint(run)
    with torch.no_grad():
        probs = model(Normalization.from_dict(meta["normalization"]).apply(images)).softmax(1)
    y = torch.tensor(labels)
    return float((probs.argmax(1) != y).float().mean()), float(-probs[torch.arange(len(y)), y].log().mean())


def _pngs(folder: Path, classes: list[str]) -> tuple[torch.Tensor, list[int]]:
    """The PNGs of ``folder/<class>/`` as uint8 [N, C, H, W] and the index of each one's class in ``classes``."""
    images, labels = [], []
    for name in sorted(p.name for p in folder.iterdir()):
        for path in sorted((folder / name).iterdir()):
            images.append(torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1))
            labels.append(classes.index(name))
    return torch.stack(images), labels


def _eval_json(capsys, *args: str) -> dict:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_another_folder_is_read_with_its_own_split_structure(folder_run, tmp_path, capsys):
    run, _ = folder_run
    other = tmp_path / "other"
    _write_pngs(other / "train", CLASSES, per_class=5, seed=1)
    _write_pngs(other / "val", CLASSES, per_class=2, seed=2)
    got = _eval_json(capsys, str(run), "--data-dir", str(other), "--split", "val")
    images, labels = _pngs(other / "val", CLASSES)
    assert got["images"] == 6  # OTHER/val, not OTHER/train picked by the run's held-out indices
    assert (got["top1_error"], got["loss"]) == pytest.approx(_direct(run, images, labels), abs=1e-5)
    assert _eval_json(capsys, str(run), "--data-dir", str(other), "--split", "train")["images"] == 15
    assert _eval_json(capsys, str(run), "--data-dir", str(other), "--split", "all")["images"] == 21


def test_the_training_folder_by_any_spelling_reuses_the_runs_split(folder_run, tmp_path, capsys, monkeypatch):
    run, data = folder_run
    summary = json.loads((run / "summary.json").read_text())
    monkeypatch.chdir(data.parent)
    got = _eval_json(capsys, str(run), "--data-dir", f"./{data.name}/../{data.name}")
    assert got["images"] == summary["final"]["images"] == 9
    assert got["top1_error"] == pytest.approx(summary["best"]["val_error"])
    # The same images in another folder are another dataset: no held-out split, every image with "all".
    shutil.copytree(data, tmp_path / "copy")
    assert main(["eval", str(run), "--data-dir", str(tmp_path / "copy"), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no val split" in err and "--split all" in err
    got = _eval_json(capsys, str(run), "--data-dir", str(tmp_path / "copy"), "--split", "all")
    images, labels = _pngs(tmp_path / "copy", CLASSES)
    assert got["images"] == 36 and (got["top1_error"], got["loss"]) == pytest.approx(
        _direct(run, images, labels), abs=1e-5
    )


def test_unknown_classes_are_refused_before_any_image_is_read(folder_run, tmp_path, capsys):
    run, _ = folder_run
    for name in ("cat", "dog", "yak", "zebra"):
        (tmp_path / "zoo" / name).mkdir(parents=True)
        (tmp_path / "zoo" / name / "0.png").write_bytes(b"not an image: reading it would fail differently")
    assert main(["eval", str(run), "--data-dir", str(tmp_path / "zoo"), "--split", "all"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet: error: ") and err.count("\n") == 1
    assert "has classes" in err and "yak, zebra (2 of 4)" in err and "its classes are: cat, dog, frog" in err


def test_a_subset_of_the_classes_is_labelled_by_name(trained_run, tmp_path, capsys):
    """Digits "3" and "7" as PNGs: labels 0 and 1 of the folder are classes 3 and 7 of the network."""
    model, meta = model_from_checkpoint(trained_run)
    val = load_dataset("digits", val_split=meta["data"]["val_split"], split_seed=0).val
    chosen = [i for i, y in enumerate(val.labels.tolist()) if y in (3, 7)][:10]
    for i in chosen:
        (tmp_path / "mine" / str(int(val.labels[i]))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(val.images[i, 0].numpy()).save(tmp_path / "mine" / str(int(val.labels[i])) / f"{i}.png")
    got = _eval_json(capsys, str(trained_run), "--data-dir", str(tmp_path / "mine"), "--split", "all")
    order = sorted(chosen, key=lambda i: (int(val.labels[i]), f"{i}.png"))  # the folder's order
    expected = _direct(trained_run, val.images[order], val.labels[order].tolist())
    assert got["data"] == "imagefolder" and got["images"] == len(chosen)
    assert (got["top1_error"], got["loss"]) == pytest.approx(expected, abs=1e-5)


def test_test_views_follow_the_networks_input_size(trained_run, capsys):
    """An 8x8 network: --center is its own single view (not resize 256 / crop 224); --ten-crop takes
    8x8 crops of the padded image; --multi-scale is refused at once, before any data is read."""
    single = _eval_json(capsys, str(trained_run))
    center = _eval_json(capsys, str(trained_run), "--center")
    assert center["protocol"] == "center" and (center["top1_error"], center["loss"]) == pytest.approx(
        (single["top1_error"], single["loss"]), abs=1e-6
    )
    ten = _eval_json(capsys, str(trained_run), "--ten-crop")
    assert ten["images"] == single["images"] and ten["loss"] != pytest.approx(single["loss"])
    # --flip: the mean softmax of each image and its mirror, computed here by hand for comparison.
    flip = _eval_json(capsys, str(trained_run), "--flip")
    model, meta = model_from_checkpoint(trained_run / "best.safetensors", torch.device("cpu"))
    val = load_dataset("digits", val_split=meta["data"]["val_split"], split_seed=meta["data"]["split_seed"]).val
    x = Normalization.from_dict(meta["normalization"]).apply(val.images.float())
    with torch.no_grad():
        probs = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)) / 2
    by_hand = float((probs.argmax(1) != val.labels).float().mean())
    assert flip["protocol"] == "flip" and flip["top1_error"] == pytest.approx(by_hand, abs=1e-6)
    assert flip["loss"] != pytest.approx(single["loss"])
    assert main(["eval", str(trained_run), "--multi-scale", "--data-dir", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained on 8x8 images" in err and "--ten-crop" in err


def test_data_name_follows_what_the_folder_holds(tmp_path):
    from resnet.data.sources import dataset_classes
    from resnet.eval_data import data_name

    cifar = make_cifar(tmp_path / "c")
    _write_pngs(tmp_path / "pngs", CLASSES, per_class=1, seed=0)
    meta = {"data": {"name": "cifar10", "data_dir": str(cifar)}}
    assert data_name(meta, None, None) == "cifar10"
    assert data_name(meta, None, str(tmp_path / "c")) == "cifar10"  # the folder holding cifar-10-batches-py
    assert data_name(meta, None, str(tmp_path / "pngs")) == "imagefolder"
    assert data_name(meta, "cifar10", str(tmp_path / "pngs")) == "cifar10"  # --data is obeyed
    assert data_name({"data": {"name": "digits", "data_dir": None}}, None, str(tmp_path / "pngs")) == "imagefolder"
    assert dataset_classes("cifar10", str(cifar)) == load_dataset("cifar10", str(cifar)).classes
    assert dataset_classes("digits") == load_dataset("digits").classes
    assert dataset_classes("imagefolder", str(tmp_path / "pngs")) == CLASSES


def test_real_cifar_jpegs_other_classes_refused_subset_scored(folder_run, cifar10_jpg, tmp_path, capsys):
    run, _ = folder_run
    # All 50,000 images, 7 classes unknown to the network: refused from the folder names alone.
    assert main(["eval", str(run), "--data-dir", str(cifar10_jpg), "--split", "all"]) == 2
    err = capsys.readouterr().err
    assert "airplane, automobile, bird, deer, horse, ship, truck (7 of 10)" in err
    # Real 32x32 JPEGs of two of its classes: labels by name (dog, frog are 1, 2), views resized to 16x16.
    from resnet.data import transforms as T
    from resnet.data.images import decode_tensor

    images, labels = [], []
    for name in ("dog", "frog"):
        (tmp_path / "mine" / name).mkdir(parents=True)
        for file in sorted((cifar10_jpg / "train" / name).iterdir())[:6]:
            (tmp_path / "mine" / name / file.name).symlink_to(file)
            images.append(T.resize(decode_tensor(file), (16, 16)))
            labels.append(CLASSES.index(name))
    got = _eval_json(capsys, str(run), "--data-dir", str(tmp_path / "mine"), "--split", "all")
    assert got["images"] == 12
    assert (got["top1_error"], got["loss"]) == pytest.approx(_direct(run, torch.stack(images), labels), abs=1e-5)


def test_training_refuses_at_once_a_final_protocol_its_network_cannot_use(tmp_path):
    from resnet.errors import ResNetError
    from resnet.train import resolve, train

    with pytest.raises(ResNetError, match="trained on 8x8 images"):
        train(resolve({**TINY_TRAIN, "final_protocol": "multi-scale", "run_dir": str(tmp_path / "run")}))
    assert not list(tmp_path.glob("run/*.safetensors"))  # before the first step, not after the last


def test_top5_is_not_reported_for_five_classes_or_fewer(folder_run, capsys):
    """Issue 22 item 6: every label is in the top 5 of a 3-class network; its top-5 error (0.00%) says nothing."""
    scores = torch.zeros(2, 1, 1, 5)
    scores[:, 0, 0, 4] = 1.0
    assert evaluate(_Fixed(), [(scores, torch.tensor([0, 4]))]).top5_error is None
    run, _ = folder_run
    assert main(["eval", str(run)]) == 0
    line = capsys.readouterr().out
    assert "top-1 error" in line and "top-5" not in line
    assert _eval_json(capsys, str(run))["top5_error"] is None
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final"]["top5_error"] is None
    assert "top-5" not in (run / "train.log").read_text()


def test_a_folder_that_is_only_a_test_set_is_scored_whole(folder_run, tmp_path, capsys, caplog):
    """Issue 22 item 8: no --split, a folder of class folders (no train/, no val/): every image, said in a line."""
    run, data = folder_run
    shutil.copytree(data, tmp_path / "test-set")
    with caplog.at_level("INFO", logger="resnet.eval_data"):
        got = _eval_json(capsys, str(run), "--data-dir", str(tmp_path / "test-set"))
    assert got["split"] == "all" and got["images"] == 36
    assert "has no val split: a test set, every one of its 36 images is evaluated" in caplog.text
    assert main(["eval", str(run), "--data-dir", str(tmp_path / "test-set")]) == 0
    assert f"imagefolder {tmp_path / 'test-set'} all (36 images, single, fp32 as trained)" in capsys.readouterr().out
    # A train/ folder beside it would make some of its images training images: still refused.
    _write_pngs(tmp_path / "layout" / "train", CLASSES, per_class=2, seed=3)
    assert main(["eval", str(run), "--data-dir", str(tmp_path / "layout")]) == 2
    assert "has no val split" in capsys.readouterr().err


def test_eval_runs_at_the_precision_the_run_trained_with(tmp_path, capsys):
    """Issue 22 item 4: a bf16-autocast run: `resnet eval` gives training's number (bf16, said in the line);
    --precision fp32 evaluates in float32 and says so."""
    from resnet.checkpoints import load_checkpoint
    from resnet.train import resolve, train

    run = tmp_path / "bf16"
    opts = {**TINY_TRAIN, "iterations": 6, "eval_every": 6, "log_every": 3, "precision": "bf16"}
    summary = train(resolve({**opts, "run_dir": str(run)})).summary
    assert load_checkpoint(run / "best.safetensors").meta["precision"] == "bf16"
    got = _eval_json(capsys, str(run), "--batch-size", "256")
    assert got["precision"] == "bf16" and got["images"] == summary["final"]["images"]
    assert got["top1_error"] == summary["final"]["top1_error"]
    assert got["loss"] == pytest.approx(summary["final"]["loss"], rel=1e-3)
    assert main(["eval", str(run)]) == 0
    assert "(359 images, single, bf16 as trained)" in capsys.readouterr().out
    assert main(["eval", str(run), "--precision", "fp32"]) == 0
    assert "(359 images, single, fp32)" in capsys.readouterr().out
