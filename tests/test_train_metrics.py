"""The metrics stream: one JSON-lines file, the same records in every sink."""

from __future__ import annotations

import io
import logging

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
