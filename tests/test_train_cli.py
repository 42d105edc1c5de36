"""`resnet train` on the command line: help, config files, errors, the default main job."""

from __future__ import annotations

import json
import os

import pytest

from conftest import tiny_train_args
from resnet.cli import main
from resnet.train.config import field_names


def test_help_shows_every_option_and_the_global_batch(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for name in field_names():
        assert "--" + name.replace("_", "-") in text
    for flag in ("--config", "--resume", "--nproc"):
        assert flag in text
    assert "--batch-size is the global batch" in " ".join(text.split())


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('model = "cifar_resnet"\ndepth = 8\niterations = 6\nbatch_size = 16\nlr = 0.05\n')
    run_dir = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--batch-size", "32", "--quiet", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"run folder: {run_dir}") and "final validation (single)" in out
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["lr"], saved["batch_size"], saved["iterations"], saved["depth"]) == (0.05, 32, 6, 8)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "resnet21"], "option 'model': unknown model 'resnet21' (did you mean "),
        (["--recipe", "cifar-paper"], "--data cifar10 needs --data-dir DIR"),
        (["--schedule", "poly"], "invalid choice 'poly'; choose from multistep, plateau, cosine, linear, constant"),
    ],
)
def test_bad_options_give_one_line_with_the_choices(argv, message, capsys):
    try:
        code = main(["train", *argv])
    except SystemExit as e:  # argparse's own choice check
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1  # no usage dump before it


def test_unwritable_run_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(tiny_train_args(blocker / "run", iterations=2)) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet: error: ") and str(blocker) in err and err.count("\n") == 1


@pytest.mark.parametrize("target", ["metrics.jsonl", "train.log"])
def test_a_full_disk_while_training_is_one_line_and_no_half_line(tmp_path, capsys, monkeypatch, target):
    import errno

    import resnet.atomic_files

    real = resnet.atomic_files._write_all

    def full_after_the_first_line(fd, data):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.endswith(target) and os.path.getsize(path) > 0:
            os.write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(resnet.atomic_files, "_write_all", full_after_the_first_line)
    run_dir = tmp_path / "run"
    assert main(tiny_train_args(run_dir, iterations=8, log_every=2, quiet=True)) == 2
    err = capsys.readouterr().err
    assert err == f"resnet: error: cannot append to {run_dir / target}: disk full; the lines before are kept\n"
    assert (run_dir / target).read_text().endswith("\n") and (run_dir / target).read_text().count("\n") == 1


def test_default_main_job_reaches_97_percent(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--quiet"]) == 0
    out = capsys.readouterr().out
    run_dir = out.strip().splitlines()[-1].removeprefix("run folder: ")
    assert run_dir.startswith(os.path.join("runs", "resnet20-digits-"))
    summary = json.loads((tmp_path / run_dir / "summary.json").read_text())
    assert summary["final"]["top1_error"] <= 0.03
