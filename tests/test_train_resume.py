"""--resume continues exactly: N steps straight == N/2 + resume + N/2, also after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAIN, crash_after, tiny_train_args
from resnet.checkpoints import load_checkpoint, save_checkpoint
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.train import resolve, train
from resnet.train.metrics import read_metrics
from resnet.train.trainer import Trainer

# Options that exercise every piece of resumable state: momentum buffers, a schedule with warm-up,
# the ResNet-110 warm rule, EMA, cifar augmentation (random crops and flips), a mid-epoch stop.
STATEFUL = {
    **TINY_TRAIN,
    "iterations": 30,
    "log_every": 4,
    "eval_every": 7,
    "checkpoint_every": 5,
    "schedule": "cosine",
    "warmup_iterations": 3,
    "warm_rule": "on",
    "warm_until_error": 0.5,
    "ema_decay": 0.9,
    "augment": "cifar",
}


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a / "last.safetensors"), load_checkpoint(b / "last.safetensors")
    return (
        x.model.keys() == y.model.keys()
        and all(torch.equal(x.model[k], y.model[k]) for k in x.model)
        and all(torch.equal(x.ema[k], y.ema[k]) for k in x.ema)
    )


def _no_speed(records: list[dict]) -> list[dict]:
    """The records without what the clock measures (images/s, wall time, ETA), which no two runs share."""
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "wall_s", "eta_s")} for r in records]


def test_resume_is_bit_identical(tmp_path, monkeypatch):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(resolve({**STATEFUL, "run_dir": str(straight)}))

    trainer = Trainer(resolve({**STATEFUL, "run_dir": str(split)}), split)
    crash_after(trainer, monkeypatch, 17)
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "resnet", *tiny_train_args(killed, **opts)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
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


# -- finished runs, new lengths, times over sessions -------------------------------------------------

SHORT = {"iterations": 4, "eval_every": 4, "log_every": 2}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_resuming_a_finished_run_leaves_it_untouched(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_train_args(run, **SHORT)) == 0
    before = _files(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "finished earlier (4 iterations)" in out and "--iterations N" in out
    assert _files(run) == before


def test_a_new_length_recomputes_the_schedule_and_keeps_the_steps_taken(tmp_path, capsys, caplog):
    run = tmp_path / "run"
    assert main(tiny_train_args(run, **{**SHORT, "log_every": 1})) == 0
    first = read_metrics(run / "metrics.jsonl")
    with caplog.at_level("INFO"):
        assert main(["train", "--resume", str(run), "--iterations", "8"]) == 0
    assert "new length: 8 iterations instead of 4; the LR schedule is recomputed" in caplog.text
    records = read_metrics(run / "metrics.jsonl")
    assert records[: len(first)] == first  # steps 1-4 were not redone
    # Milestones at 0.5 and 0.75 of the length: steps 2, 3 of 4 before, steps 4, 6 of 8 now.
    assert [r["lr"] for r in records if r["kind"] == "train"] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001, 0.01, 0.01, 0.001, 0.001]
    )
    config = json.loads((run / "config.json").read_text())
    assert (config["iterations"], config["resolved"]["milestone_steps"]) == (8, [4, 6])
    assert json.loads((run / "summary.json").read_text())["iterations"] == 8
    capsys.readouterr()
    for argv, message in (
        (["--iterations", "8"], "that is 8 iterations, but the run has taken 8 already"),
        (["--iterations", "9", "--epochs", "1"], "not both"),
        (["--overwrite"], "drop one of them"),
    ):
        assert main(["train", "--resume", str(run), *argv]) == 2
        assert message in capsys.readouterr().err


def test_extending_step_by_step_equals_training_straight(tmp_path):
    """With a schedule that does not depend on the length, 10 -> 16 iterations -> 0.5 epochs (22 steps)
    ends with exactly the weights of 22 steps in one go."""
    opts = {**SHORT, "iterations": 10, "eval_every": 5, "schedule": "constant", "augment": "cifar"}
    extended, straight = tmp_path / "extended", tmp_path / "straight"
    assert main(tiny_train_args(extended, **opts)) == 0
    assert main(["train", "--resume", str(extended), "--iterations", "16"]) == 0
    assert main(["train", "--resume", str(extended), "--epochs", "0.5"]) == 0
    assert main(tiny_train_args(straight, **{**opts, "iterations": 22})) == 0
    config = json.loads((extended / "config.json").read_text())
    assert (config["iterations"], config["epochs"], config["resolved"]["iterations"]) == (None, 0.5, 22)
    x, y = load_checkpoint(extended / "last.safetensors"), load_checkpoint(straight / "last.safetensors")
    assert x.state["step"] == 22 and all(torch.equal(x.model[k], y.model[k]) for k in x.model)


def test_times_add_up_over_sessions_and_old_checkpoints_still_resume(tmp_path, monkeypatch):
    run, old = tmp_path / "run", tmp_path / "old"
    trainer = Trainer(
        resolve({**TINY_TRAIN, **SHORT, "iterations": 8, "checkpoint_every": 4, "run_dir": str(run)}), run
    )
    crash_after(trainer, monkeypatch, 6)
    with pytest.raises(RuntimeError):
        trainer.fit()
    saved = load_checkpoint(run / "last.safetensors")
    times = saved.state["time"]
    assert times["steps"] == 4 and 0 < times["train_s"] <= times["wall_s"]

    # The same checkpoint as written before times were kept.
    shutil.copytree(run, old)
    state = {k: v for k, v in saved.state.items() if k != "time"}
    save_checkpoint(old / "last.safetensors", saved.meta, saved.model, saved.ema, state)

    summary = train(resume=run).summary
    assert summary["timed_iterations"] == 8
    assert summary["train_time_s"] > times["train_s"] and summary["wall_time_s"] > times["wall_s"]
    assert summary["images_per_s"] == pytest.approx(8 * 32 / summary["train_time_s"])
    summary = train(resume=old).summary
    assert summary["timed_iterations"] == 4  # the steps of this session only
    assert summary["images_per_s"] == pytest.approx(4 * 32 / summary["train_time_s"])


# -- damaged state is refused before the run folder changes (issue 22 item 17) ---------------------


@pytest.fixture(scope="module")
def finished_short(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("short") / "run"
    train(resolve({**TINY_TRAIN, **SHORT, "run_dir": str(run)}))
    return run


def _damaged(run: Path, target: Path, change) -> Path:
    """A copy of ``run`` whose last checkpoint's training state went through ``change``."""
    shutil.copytree(run, target)
    last = load_checkpoint(target / "last.safetensors")
    change(last.state)
    save_checkpoint(target / "last.safetensors", last.meta, last.model, last.ema, last.state)
    return target


def _wrong_momentum(state):
    buffers = state["optimizer"]["state"]
    first = next(iter(buffers))
    buffers[first]["momentum_buffer"] = torch.zeros(3, 3)


def _bogus_schedule(state):
    state["schedule"] = {"bogus": 1}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (_wrong_momentum, ["momentum buffer of parameter", "must be a float tensor of shape", "got shape [3, 3]"]),
        (_bogus_schedule, ["'schedule' must have the fields plateau, warm_rule (got bogus)"]),
    ],
)
def test_a_damaged_state_is_refused_before_any_file_changes(finished_short, tmp_path, capsys, change, words):
    run = _damaged(finished_short, tmp_path / "run", change)
    before = _files(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--iterations", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(run / "last.safetensors") in err and "damaged training state" in err
    assert all(w in err for w in words), err
    assert _files(run) == before  # config.json, summary.json and metrics.jsonl as they were


def test_resume_takes_quiet(finished_short, tmp_path, capsys):
    """--quiet is a display option: a resumed run takes it (it was refused as a changed option)."""
    run = tmp_path / "run"
    shutil.copytree(finished_short, run)
    assert main(["train", "--resume", str(run), "--iterations", "6", "--quiet"]) == 0
    assert "final validation" in capsys.readouterr().out
    assert load_checkpoint(run / "last.safetensors").state["step"] == 6
