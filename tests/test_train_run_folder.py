"""A run folder holds one run: a new run refuses an old one unless told to overwrite it, one training
uses a folder at a time (a killed one frees it), and the temp files of writes that died are removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_TRAIN, crash_after, tiny_train_args
from resnet.atomic_files import temp_path
from resnet.checkpoints import load_checkpoint
from resnet.cli import main
from resnet.train import resolve, train
from resnet.train.metrics import read_metrics
from resnet.train.trainer import Trainer

SHORT = {"iterations": 4, "eval_every": 4, "log_every": 2}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_new_run_refuses_a_folder_that_holds_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_train_args(run, **SHORT)) == 0
    before = _files(run)
    capsys.readouterr()
    assert main(tiny_train_args(run, **SHORT, lr=0.05)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a run" in err and f"resnet train --resume {run}" in err
    assert "--overwrite" in err
    assert _files(run) == before  # nothing appended, nothing replaced


def test_overwrite_deletes_the_old_run_first(tmp_path):
    run = tmp_path / "run"
    assert main(tiny_train_args(run, **{**SHORT, "iterations": 6, "eval_every": 3})) == 0
    (run / "best.onnx").write_bytes(b"an export of the old run")
    (run / "notes.txt").write_text("not the run's")
    assert main(tiny_train_args(run, **SHORT, overwrite=True)) == 0
    records = read_metrics(run / "metrics.jsonl")
    assert [(r["kind"], r["step"]) for r in records] == [("train", 2), ("train", 4), ("val", 4)]
    # The old run's log is gone: one plan (train.log holds it since issue 22 item 7) and the new run's 3 steps.
    log = (run / "train.log").read_text().splitlines()
    assert len([line for line in log if line.startswith("step ")]) == 3
    assert [line for line in log if line.startswith("new run folder")] == [log[0]]
    assert not (run / "best.onnx").exists() and (run / "notes.txt").read_text() == "not the run's"
    assert load_checkpoint(run / "last.safetensors").state["step"] == 4


def test_one_training_per_folder_and_a_killed_one_frees_it(tmp_path, capsys):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    other = subprocess.Popen(
        [sys.executable, "-m", "resnet", *tiny_train_args(run, iterations=100000)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (run / "config.json").exists() and other.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert other.poll() is None, "the first training ended early"
        for argv in (
            tiny_train_args(run, **SHORT),
            tiny_train_args(run, **SHORT, overwrite=True),
            ["train", "--resume", str(run)],
        ):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"in use by another training (process {other.pid})" in err and err.count("\n") == 1
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    # The OS dropped the killed process's lock: the folder can be taken over.
    assert main(tiny_train_args(run, **SHORT, overwrite=True)) == 0
    assert load_checkpoint(run / "last.safetensors").state["step"] == 4


def test_a_failed_start_leaves_no_empty_folder(tmp_path):
    run = tmp_path / "run"
    assert main(tiny_train_args(run, data="imagefolder", data_dir=str(tmp_path / "missing"))) == 2
    assert not run.exists()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_temp_files_of_dead_writers_are_removed_at_start_and_resume(tmp_path, monkeypatch):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        run = tmp_path / "run"
        run.mkdir()
        # Killed while writing its first file: the folder holds no run, only the temp file.
        first = temp_path(run / "config.json", _dead_pid())
        first.write_text("{")
        trainer = Trainer(
            resolve({**TINY_TRAIN, **SHORT, "iterations": 6, "checkpoint_every": 2, "run_dir": str(run)}), run
        )
        crash_after(trainer, monkeypatch, 3)
        with pytest.raises(RuntimeError):
            trainer.fit()
        assert not first.exists()
        stale = temp_path(run / "last.safetensors", _dead_pid())
        stale.write_bytes(b"\0" * 1000)
        writing = temp_path(run / "best.safetensors", live.pid)  # a live process's write in progress
        writing.write_bytes(b"\0" * 1000)
        train(resume=run)
        assert not stale.exists() and writing.exists()
        assert load_checkpoint(run / "last.safetensors").state["step"] == 6
    finally:
        live.kill()
        live.wait()
