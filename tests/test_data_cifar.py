"""CIFAR-10/100 in the official python format: folder and archive, and the restricted unpickler."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from conftest import make_cifar, py2_pickle, tar_folder
from resnet.data import load_dataset
from resnet.data.safe_pickle import safe_load
from resnet.errors import ResNetError


def test_cifar10_folder_reads_every_batch_in_order(tmp_path):
    folder = make_cifar(tmp_path, "cifar10", per_batch=20, test=30)
    b = load_dataset("cifar10", str(tmp_path))
    assert b.kind == "tensor" and b.image_size == (32, 32) and b.in_channels == 3
    assert b.classes[:3] == ["airplane", "automobile", "bird"] and b.num_classes == 10
    assert b.train.images.shape == (100, 3, 32, 32) and len(b.test) == 30 and b.val is None
    # Rows of 3072 are R, G, B planes of 32x32: image 0 of batch 2 is row 0 of data_batch_2.
    raw = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="bytes")[b"data"]
    assert torch.equal(b.train.images[20], torch.from_numpy(raw[0].reshape(3, 32, 32)))
    assert b.train.labels.tolist() == [i % 10 for i in range(20)] * 5
    # The extracted folder itself works as data_dir too.
    assert torch.equal(load_dataset("cifar10", str(folder)).test.images, b.test.images)


def test_cifar10_archive_equals_folder(tmp_path):
    folder = make_cifar(tmp_path / "src")
    archive = tar_folder(folder, tmp_path / "cifar-10-python.tar.gz")
    from_folder = load_dataset("cifar10", str(tmp_path / "src"))
    for data_dir in (archive, tmp_path):  # the archive path, or a folder holding it
        b = load_dataset("cifar10", str(data_dir))
        assert torch.equal(b.train.images, from_folder.train.images)
        assert torch.equal(b.test.labels, from_folder.test.labels)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    make_cifar(tmp_path, "cifar100", per_batch=40, test=10)
    b = load_dataset("cifar100", str(tmp_path), val_split=50, split_seed=1)
    assert b.num_classes == 100 and b.classes[7] == "fine07" and b.coarse_classes[3] == "coarse03"
    assert len(b.train) == 150 and len(b.val) == 50 and len(b.test) == 10
    # Coarse labels follow their images through the split.
    assert torch.equal(b.train.coarse_labels, b.train.labels // 5)
    assert torch.equal(b.val.coarse_labels, b.val.labels // 5)


def test_paper_split_is_seeded_and_described(tmp_path):
    make_cifar(tmp_path, per_batch=200, test=10)
    a = load_dataset("cifar10", str(tmp_path), val_split=100, split_seed=3)
    b = load_dataset("cifar10", str(tmp_path), val_split=100, split_seed=3)
    c = load_dataset("cifar10", str(tmp_path), val_split=100, split_seed=4)
    assert len(a.train) == 900 and len(a.val) == 100
    assert a.split == b.split and torch.equal(a.val.images, b.val.images)
    assert a.split["val_indices"] != c.split["val_indices"]
    # The description is enough to rebuild the split: the listed indices are the val images.
    full = load_dataset("cifar10", str(tmp_path))
    assert torch.equal(full.train.images[a.split["val_indices"]], a.val.images)
    assert a.split["seed"] == 3 and a.split["val_size"] == 100 and a.split["train_size"] == 900


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_cifar(tmp_path)
    evil = pickle.dumps({"data": _Exploit(), "labels": [0]}, protocol=2)
    (folder / "data_batch_3").write_bytes(evil)
    with pytest.raises(ResNetError, match=r"data_batch_3: unsafe pickle, refused global (posix|os)\.system") as e:
        load_dataset("cifar10", str(tmp_path))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "pwned").exists()
    # The payload is real: an unrestricted unpickler would have run it.
    pickle.loads(evil)
    assert (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(eval, protocol=2),  # builtins.eval: a callable, not data
        b"cbuiltins\nexec\n(Vprint(1)\ntR.",  # a hand-written call of exec
    ],
)
def test_unpickler_refuses_other_globals(payload):
    with pytest.raises(
        ResNetError, match=r"somefile: unsafe pickle, refused global (__builtin__|builtins)\.(eval|exec)"
    ):
        safe_load(payload, "somefile")


def test_unpickler_reads_official_layout():
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    out = safe_load(py2_pickle({b"data": data, b"labels": [3, 70000], b"name": b"x"}), "f")
    assert out[b"labels"] == [3, 70000] and out[b"name"] == b"x" and np.array_equal(out[b"data"], data)


def test_truncated_batch_names_the_file(tmp_path):
    folder = make_cifar(tmp_path)
    raw = (folder / "data_batch_4").read_bytes()
    (folder / "data_batch_4").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ResNetError, match=r"data_batch_4: truncated or not a CIFAR batch") as e:
        load_dataset("cifar10", str(tmp_path))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"this is not a pickle at all", "not a CIFAR batch"),
        (py2_pickle([1, 2, 3]), "not a CIFAR batch"),
        (py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), r"not a uint8 \[N, 3072\] array"),
        (py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "entries for 2 images"),
        (py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), r"labels outside 0\.\.9"),
    ],
)
def test_not_a_batch_names_the_file(tmp_path, content, message):
    folder = make_cifar(tmp_path)
    (folder / "test_batch").write_bytes(content)
    with pytest.raises(ResNetError, match=rf"test_batch.*{message}"):
        load_dataset("cifar10", str(tmp_path))


def test_missing_batch_names_the_file(tmp_path):
    folder = make_cifar(tmp_path)
    (folder / "data_batch_5").unlink()
    with pytest.raises(ResNetError, match=r"data_batch_5: missing CIFAR file"):
        load_dataset("cifar10", str(tmp_path))


def test_missing_from_archive_names_the_member(tmp_path):
    folder = make_cifar(tmp_path / "src")
    (folder / "test_batch").unlink()
    archive = tar_folder(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(ResNetError, match=r"cifar-10-python\.tar\.gz:cifar-10-batches-py/test_batch: missing"):
        load_dataset("cifar10", str(archive))


def test_absent_dataset_says_where_to_put_it(tmp_path):
    with pytest.raises(
        ResNetError,
        match=r"cifar100 not found in .*: put cifar-100-python\.tar\.gz \(from https://"
        r"www\.cs\.toronto\.edu/~kriz/cifar-100-python\.tar\.gz, MD5 eb9058c3",
    ):
        load_dataset("cifar100", str(tmp_path))
    with pytest.raises(ResNetError, match="needs --data-dir"):
        load_dataset("cifar10")
