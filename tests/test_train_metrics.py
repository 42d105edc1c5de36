"""The metrics stream: one JSON-lines file, the same records in every sink."""

from __future__ import annotations

import errno
import io
import logging
import os

import pytest

from resnet.errors import ResNetError
from resnet.train.metrics import LogFile, MetricsStream, ProgressBar, format_record, read_metrics, truncate_after

TRAIN = {"kind": "train", "step": 20, "epoch": 0.5, "loss": 1.25, "train_error": 0.4, "lr": 0.1, "images_per_s": 900.0}
VAL = {"kind": "val", "step": 40, "epoch": 1.0, "val_error": 0.125, "val_top5_error": 0.01, "val_loss": 0.5}


def test_stream_feeds_file_log_and_quiet_console(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    stream = MetricsStream(path, [LogFile(tmp_path / "train.log", 100), ProgressBar(100, quiet=True)])
    with caplog.at_level(logging.INFO):
        stream.emit(TRAIN)
        stream.emit(VAL)
    stream.close()
    assert read_metrics(path) == [TRAIN, VAL]
    log = (tmp_path / "train.log").read_text().splitlines()
    assert log == [
        "step 20/100  epoch 0.50  loss 1.2500  train err 40.00%  lr 0.1  900 img/s",
        "step 40/100  epoch 1.00  val err 12.50%  top-5 1.00%  val loss 0.5000",
    ]
    assert [r.getMessage() for r in caplog.records] == [log[1]]  # quiet: validations only


def test_progress_bar_follows_steps(tmp_path):
    bar = ProgressBar(100, quiet=False)
    bar.write(TRAIN)
    assert bar.bar.n == 20 and "err=40.0%" in str(bar.bar)
    bar.close()


def test_progress_bar_moves_every_step_and_shows_a_window_when_it_ends():
    out = io.StringIO()
    bar = ProgressBar(100, file=out)
    for step in range(1, 21):
        bar.advance(step)
        assert bar.bar.n == step
    bar.write(TRAIN)  # the window of steps 1-20
    shown = out.getvalue().split("\r")[-1]  # what the terminal shows now
    assert "20/100" in shown and "err=40.0%" in shown and "loss=1.250" in shown
    bar.close()


def test_truncate_after_drops_redone_steps_and_torn_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    stream = MetricsStream(path, [])
    stream.emit(TRAIN)
    stream.emit(VAL)
    stream.close()
    with path.open("a") as f:
        f.write('{"kind": "train", "st')  # a crash mid-line
    truncate_after(path, 30)
    assert read_metrics(path) == [TRAIN]


@pytest.mark.parametrize("target", ["metrics.jsonl", "train.log"])
def test_a_full_disk_is_one_line_and_leaves_no_half_line(tmp_path, monkeypatch, target):
    stream = MetricsStream(tmp_path / "metrics.jsonl", [LogFile(tmp_path / "train.log", 100)])
    stream.emit(TRAIN)
    before = {name: (tmp_path / name).read_bytes() for name in ("metrics.jsonl", "train.log")}
    fd = (stream.file if target == "metrics.jsonl" else stream.sinks[0].file).fd
    real_write = os.write

    def full(to, data):  # half of the line reaches the disk, then ENOSPC
        if to != fd:
            return real_write(to, data)
        real_write(to, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(ResNetError) as e:
        stream.emit(VAL)
    monkeypatch.undo()
    stream.close()
    assert str(e.value) == f"cannot append to {tmp_path / target}: disk full; the lines before are kept"
    assert (tmp_path / target).read_bytes() == before[target]  # cut back to whole lines
    assert read_metrics(tmp_path / "metrics.jsonl")[0] == TRAIN


def test_an_unwritable_run_folder_is_one_line(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path).endswith("metrics.jsonl"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ResNetError, match=r"^cannot write .*metrics\.jsonl: Permission denied$"):
        MetricsStream(tmp_path / "metrics.jsonl", [])


def test_a_val_record_without_top5_leaves_it_out():
    """Issue 22 item 6: networks of 5 classes or fewer have no top-5 error (null in metrics.jsonl)."""
    from resnet.train.metrics import format_final

    line = format_record({**VAL, "val_top5_error": None}, 100)
    assert line == "step 40/100  epoch 1.00  val err 12.50%  val loss 0.5000"
    final = {"protocol": "single", "top1_error": 0.25, "top5_error": None, "loss": 0.7, "images": 8}
    assert format_final(final) == "final validation (single): top-1 error 25.00% (accuracy 75.00%), 8 images"
    assert "top-5 error 1.00%" in format_final({**final, "top5_error": 0.01})


def test_the_final_line_names_a_reduced_precision():
    from resnet.train.metrics import format_final

    final = {"protocol": "single", "precision": "bf16", "top1_error": 0.25, "top5_error": None, "images": 8}
    assert format_final(final).startswith("final validation (single, bf16 autocast): top-1 error 25.00%")
