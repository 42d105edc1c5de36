"""--resume continues exactly: N steps straight == N/2 + resume + N/2, also after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAIN, tiny_train_args
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.train import resolve, train
from resnet.train.checkpoint import load_checkpoint
from resnet.train.metrics import read_metrics
from resnet.train.trainer import Trainer

# Options that exercise every piece of resumable state: momentum buffers, a schedule with warm-up,
# the ResNet-110 warm rule, EMA, cifar augmentation (random crops and flips), a mid-epoch stop.
STATEFUL = {**TINY_TRAIN, "iterations": 30, "log_every": 4, "eval_every": 7, "checkpoint_every": 5,
            "schedule": "cosine", "warmup_iterations": 3, "warm_rule": "on", "warm_until_error": 0.5,
            "ema_decay": 0.9, "augment": "cifar"}


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a / "last.safetensors"), load_checkpoint(b / "last.safetensors")
    return x.model.keys() == y.model.keys() and all(torch.equal(x.model[k], y.model[k]) for k in x.model) \
        and all(torch.equal(x.ema[k], y.ema[k]) for k in x.ema)


def _no_speed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "images_per_s"} for r in records]


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(resolve({**STATEFUL, "run_dir": str(straight)}))

    trainer = Trainer(resolve({**STATEFUL, "run_dir": str(split)}), split)
    step = trainer._train_step

    def crash_after_17(batches):
        step(batches)
        if trainer.step == 17:
            raise RuntimeError("crash")

    monkeypatch.setattr(trainer, "_train_step", crash_after_17)
    with pytest.raises(RuntimeError):
        trainer.fit()
    assert load_checkpoint(split / "last.safetensors").state["step"] == 15
    train(resume=split)
    assert _same_weights(straight, split)
    # The records of the redone steps replace the lost ones: the streams match, speed aside.
    assert _no_speed(read_metrics(straight / "metrics.jsonl")) == _no_speed(read_metrics(split / "metrics.jsonl"))


def test_kill_9_mid_run_then_resume_is_bit_identical(tmp_path):
    opts = {**STATEFUL, "iterations": 150, "checkpoint_every": 10, "eval_every": 50}
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "resnet", *tiny_train_args(killed, **opts)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not (killed / "last.safetensors").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # land somewhere after the first checkpoint, possibly in the middle of writing one
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    stopped_at = load_checkpoint(killed / "last.safetensors").state["step"]
    assert 10 <= stopped_at < 150

    assert main(["train", "--resume", str(killed)]) == 0
    assert main(tiny_train_args(straight, **opts)) == 0
    assert load_checkpoint(killed / "last.safetensors").state["step"] == 150
    assert _same_weights(straight, killed)


def test_resume_refuses_changed_options_and_non_runs(tmp_path, trained_run, capsys):
    assert main(["train", "--resume", str(trained_run), "--lr", "0.5"]) == 2
    assert "--resume continues the run with its saved config; drop --lr" in capsys.readouterr().err
    with pytest.raises(ResNetError, match="not a run folder"):
        train(resume=tmp_path)
