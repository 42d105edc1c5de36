"""The training loop on the embedded digits: run folder, metrics, stops, options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import TINY_TRAIN, tiny_train_args
from resnet import create_model
from resnet.checkpoints import load_checkpoint
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.train import resolve, train
from resnet.train.build import param_groups
from resnet.train.ema import EMA
from resnet.train.metrics import read_metrics
from resnet.train.trainer import Interrupted, Trainer


def test_run_folder_holds_everything(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"] == "cifar_resnet" and config["resolved"]["iterations"] == 40
    assert json.loads((trained_run / "classes.json").read_text()) == [str(i) for i in range(10)]
    assert (trained_run / "normalization.json").is_file() and (trained_run / "split.json").is_file()
    records = read_metrics(trained_run / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [r["step"] for r in records if r["kind"] == "val"] == [20, 40]
    assert set(records[0]) == {"kind", "step", "epoch", "loss", "train_error", "lr", "images_per_s"}
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["params"] == sum(
        p.numel() for p in create_model("cifar_resnet", depth=8, in_channels=1).parameters()
    )
    # 40 steps of 32 digits already learn most of the task: training actually works.
    assert summary["final"]["top1_error"] < 0.5 and summary["final"]["images"] == 359
    assert records[-1]["val_error"] == summary["final"]["top1_error"]
    last = load_checkpoint(trained_run / "last.safetensors")
    assert last.meta["step"] == 40 and last.state["step"] == 40
    assert load_checkpoint(trained_run / "best.safetensors").state is None  # weights only
    log = (trained_run / "train.log").read_text()
    assert log.count("val err") == 2
    # Issue 22 item 7: the plan and the final result are written in the log, not only on stderr.
    lines = log.splitlines()
    assert lines[0] == f"new run folder: {trained_run}"
    assert lines[1].startswith("cifar_resnet on digits: 1438 train / 359 val images, 10 classes; 40 iterations")
    assert lines[2].startswith("global batch 32 = 1 process(es) x 32") and lines[3].startswith("speed: ")
    final = summary["final"]
    assert lines[-1] == (
        f"final validation (single): top-1 error {100 * final['top1_error']:.2f}% "
        f"(accuracy {100 * (1 - final['top1_error']):.2f}%), top-5 error {100 * final['top5_error']:.2f}%, 359 images"
    )


def test_tensorboard_events_carry_the_metrics_stream(trained_run):
    """The event files hold the very numbers of metrics.jsonl (skipped where tensorboard is absent)."""
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tensorboard"))
    events.Reload()
    records = read_metrics(trained_run / "metrics.jsonl")
    for kind, key in (("train", "loss"), ("train", "lr"), ("val", "val_error")):
        want = [(r["step"], r[key]) for r in records if r["kind"] == kind]
        got = [(e.step, e.value) for e in events.Scalars(f"{kind}/{key}")]
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)  # stored as float32


def test_nan_loss_stops_with_the_step_and_keeps_last_good_checkpoint(tmp_path):
    cfg = resolve({**TINY_TRAIN, "run_dir": str(tmp_path), "lr": 1e12, "checkpoint_every": 1, "log_every": 1})
    with pytest.raises(ResNetError, match=r"became NaN or infinite at step \d+ .*last good checkpoint .*step") as e:
        train(cfg)
    bad_step = int(e.value.args[0].split("at step ")[1].split()[0])
    good = load_checkpoint(tmp_path / "last.safetensors")
    assert good.meta["step"] == bad_step - 1 and f"(step {bad_step - 1})" in e.value.args[0]
    assert all(torch.isfinite(v).all() for v in good.model.values() if v.is_floating_point())


def test_sigint_saves_a_checkpoint_and_gives_a_resume_hint(tmp_path, monkeypatch):
    trainer = Trainer(resolve({**TINY_TRAIN, "run_dir": str(tmp_path)}), tmp_path)
    step = trainer._train_step
    before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN under nohup

    def step_then_signal(batches):
        step(batches)
        if trainer.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(trainer, "_train_step", step_then_signal)
    with pytest.raises(Interrupted, match=f"resnet train --resume {tmp_path}"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "last.safetensors").state["step"] == 7
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_progress_bar_moves_every_step_between_records(tmp_path, monkeypatch):
    # As on a terminal: pytest's stderr is not one, and there the trainer draws no bar.
    monkeypatch.setattr("resnet.train.trainer.bars_enabled", lambda quiet=False, file=None: not quiet)
    trainer = Trainer(
        resolve(
            {**TINY_TRAIN, "run_dir": str(tmp_path), "quiet": False, "iterations": 6, "log_every": 5, "eval_every": 6}
        ),
        tmp_path,
    )
    step, counts = trainer._train_step, []

    def count_then_step(batches):
        counts.append(trainer.progress.bar.n)
        step(batches)

    monkeypatch.setattr(trainer, "_train_step", count_then_step)
    trainer.fit()
    assert counts == [0, 1, 2, 3, 4, 5]


def test_images_per_s_comes_from_training_time_not_validation(tmp_path, monkeypatch, capsys):
    validate = Trainer._validate

    def slow_validate(self, stream):
        time.sleep(0.5)  # a validation far longer than the training steps
        return validate(self, stream)

    monkeypatch.setattr(Trainer, "_validate", slow_validate)
    assert main(tiny_train_args(tmp_path / "run", iterations=4, eval_every=2, log_every=2)) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["wall_time_s"] >= s["train_time_s"] + 2 * 0.5 and s["timed_iterations"] == 4
    assert s["images_per_s"] == pytest.approx(4 * 32 / s["train_time_s"])
    assert (
        f"4 iterations in {s['wall_time_s']:.1f} s ({s['train_time_s']:.1f} s training, "
        f"{s['images_per_s']:.0f} images/s)"
    ) in capsys.readouterr().out


def test_no_weight_decay_on_bn_and_bias():
    model = create_model("cifar_resnet", depth=8)
    groups = param_groups(model, resolve({"wd_bn_bias": False}))
    assert all(p.ndim > 1 for p in groups[0]["params"]) and groups[1]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(param_groups(model, resolve({}))) == 1


def test_ema_is_a_moving_average_of_parameters_only():
    model = torch.nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(5.0)
    ema.update(model)
    assert torch.allclose(ema.state["weight"], torch.full((2,), 1.5))  # 0.75 * 1 + 0.25 * 3
    assert torch.equal(ema.state["running_mean"], torch.full((2,), 5.0))


def test_gradient_accumulation_keeps_the_global_batch(tmp_path, caplog):
    cfg = resolve({**TINY_TRAIN, "run_dir": str(tmp_path), "micro_batch": 8, "iterations": 4, "eval_every": 4})
    with caplog.at_level("INFO"):
        result = train(cfg)
    resolved = json.loads((tmp_path / "config.json").read_text())["resolved"]
    assert (resolved["accumulation_steps"], resolved["micro_batch"], resolved["steps_per_epoch"]) == (4, 8, 1438 // 32)
    assert "gradient accumulation over 4 micro-batches of 8" in caplog.text
    assert result.summary["iterations"] == 4


def test_label_smoothing_and_ema_run(tmp_path):
    result = train(
        resolve(
            {
                **TINY_TRAIN,
                "run_dir": str(tmp_path),
                "label_smoothing": 0.1,
                "ema_decay": 0.9,
                "iterations": 10,
                "eval_every": 10,
            }
        )
    )
    last = load_checkpoint(tmp_path / "last.safetensors")
    assert last.ema is not None and last.meta["eval_weights"] == "ema"
    assert not all(torch.equal(last.ema[k], last.model[k]) for k in last.model)
    assert result.summary["best"]["step"] == 10


# -- a dead data worker, a data folder without --data (issues 26, 22) --------------------------------


def _jpeg_folder(root):
    """16 JPEGs too large for the small-image cache: read from files by DataLoader workers."""
    from test_data_folder import save

    for c in ("a", "b"):
        for i in range(8):
            save(root / c / f"{i}.jpg", (100, 80), seed=i + 10 * (c == "b"))
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])  # SIGKILL: what the OOM killer sends
def test_a_dead_data_worker_stops_the_run_like_sigterm(tmp_path, sig):
    from test_train_ddp_signals import _alive, _children, _env, _wait_for

    data, run, err = _jpeg_folder(tmp_path / "data"), tmp_path / "run", tmp_path / "err.txt"
    args = tiny_train_args(
        run,
        data="imagefolder",
        data_dir=data,
        cache_dir=tmp_path / "cache",
        workers=2,
        batch_size=4,
        iterations=100000,
        log_every=1,
        eval_every=100000,
        checkpoint_every=3,
        val_split=0,
        normalization="channel",
    )
    proc = subprocess.Popen([sys.executable, "-m", "resnet", *args], env=_env(), stderr=err.open("w"))
    try:
        training = lambda: (run / "metrics.jsonl").is_file() and len(read_metrics(run / "metrics.jsonl")) >= 2  # noqa: E731
        assert _wait_for(lambda: training() or proc.poll() is not None, 120) and proc.poll() is None, err.read_text()
        worker = min(p for p in _children(proc.pid) if _alive(p))
        os.kill(worker, sig)
        assert proc.wait(60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert "Traceback" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    step = load_checkpoint(run / "last.safetensors").state["step"]
    assert last.startswith(f"resnet: data loading worker (pid {worker}) ") and "memory may be short" in last, last
    assert last.endswith(f"Stopped at step {step}/100000; checkpoint saved. Resume with: resnet train --resume {run}")
    # The saved state is a whole step's: the run continues from it.
    assert main(["train", "--resume", str(run), "--iterations", str(step + 2)]) == 0
    assert load_checkpoint(run / "last.safetensors").state["step"] == step + 2


def test_a_data_folder_without_data_trains_on_the_folder(tmp_path, capsys, caplog):
    from test_data_folder import small_folder

    caplog.set_level("INFO", logger="resnet.train.config")
    small_folder(tmp_path / "data", per_class=10)
    run = tmp_path / "run"
    args = tiny_train_args(run, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", iterations=2, batch_size=8)
    i = args.index("--data")
    assert main(args[:i] + args[i + 2 :]) == 0  # no --data
    config = json.loads((run / "config.json").read_text())
    assert (config["data"], config["data_dir"]) == ("imagefolder", str(tmp_path / "data"))
    assert json.loads((run / "classes.json").read_text()) == ["ant", "moth", "zebra"]
    assert f"--data-dir {tmp_path / 'data'} without --data: training on that image folder (--data imagefolder)" in (
        caplog.messages
    )
    assert main(tiny_train_args(tmp_path / "refused", data_dir=tmp_path / "data")) == 2  # --data digits
    assert "option 'data-dir': --data digits is embedded and reads no folder" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
