"""Experiments and analyses end to end on the embedded digits: tables, figure data, continuation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet import create_model
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.experiments import PAPER_TABLE6, degradation
from resnet.report import load_run
from resnet.train.config import resolve
from resnet.train.metrics import read_metrics

# No --set val_split: on the digits the experiment itself must not ask for the recipe's 5,000 images.
TINY = [
    "--data",
    "digits",
    "--quiet",
    "--set",
    "iterations=20",
    "--set",
    "eval_every=10",
    "--set",
    "log_every=5",
    "--set",
    "batch_size=32",
]


@pytest.fixture(scope="module")
def degradation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("degradation")
    assert main(["experiment", "degradation", "--depths", "8,20", "--out", str(out), *TINY]) == 0
    return out


def _val_errors(run_dir: Path) -> list[float]:
    return [r["val_error"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "val"]


def test_degradation_trains_plain_and_residual_at_each_depth(degradation_dir: Path) -> None:
    for name in ("plain8", "resnet8", "plain20", "resnet20"):
        config = json.loads((degradation_dir / name / "config.json").read_text())
        # --set values arrive typed, and the recipe is the paper's apart from what was overridden.
        assert config["batch_size"] == 32 and config["iterations"] == 20 and config["recipe"] == "cifar-paper"
        assert config["momentum"] == 0.9 and config["weight_decay"] == 1e-4
        assert config["val_split"] == 0.2  # the recipe's 5,000 images do not fit in 1,797 digits
        assert config["model"] in ("cifar_plain", "cifar_resnet", "plain20", "resnet20")
    assert json.loads((degradation_dir / "plain8" / "config.json").read_text())["model"] == "cifar_plain"


def test_table6_holds_each_runs_numbers(degradation_dir: Path) -> None:
    rows = json.loads((degradation_dir / "table6.json").read_text())["rows"]
    assert [r[0] for r in rows[1:]] == ["8", "20"]
    for row in rows[1:]:
        depth = int(row[0])
        params = sum(
            p.numel() for p in create_model("cifar_resnet", depth=depth, num_classes=10, in_channels=1).parameters()
        )
        assert row[1] == f"{params:,}"
        assert row[3] == f"{100 * _val_errors(degradation_dir / f'plain{depth}')[-1]:.2f}"
        assert row[5] == f"{100 * _val_errors(degradation_dir / f'resnet{depth}')[-1]:.2f}"
        train = [
            r["train_error"]
            for r in read_metrics(degradation_dir / f"resnet{depth}" / "metrics.jsonl")
            if r["kind"] == "train"
        ]
        assert row[4] == f"{100 * train[-1]:.2f}"
        assert row[6] == (f"{PAPER_TABLE6[depth]:.2f}" if depth in PAPER_TABLE6 else "-")
    note = (degradation_dir / "table6.md").read_text()
    assert "| 20 |" in note
    # 20 iterations are not the paper's schedule, and the table must not say they are.
    assert "shortened schedule, 20 of 64000 iterations" in note and "full schedule" not in note


class _Curves:
    """A run reduced to its training curve, for depth_order."""

    def __init__(self, errors: dict[int, float]) -> None:
        self.errors = errors

    def curve(self, kind: str, key: str) -> tuple[list[int], list[float]]:
        assert (kind, key) == ("train", "train_error")
        return list(self.errors), list(self.errors.values())


def test_depth_order_counts_second_half_windows_in_the_papers_order() -> None:
    from resnet.experiments import depth_order

    steps = range(10, 90, 10)  # 8 windows; the second half is steps 50 to 80
    runs = {
        "plain20": _Curves({s: 0.5 for s in steps}),
        "plain56": _Curves({s: 0.6 if s != 60 else 0.4 for s in steps}),  # worse but at step 60
        "resnet20": _Curves({s: 0.5 for s in steps}),
        # better only from step 70 on; its step 20 is missing, which must not matter
        "resnet56": _Curves({s: 0.6 if s < 70 else 0.3 for s in steps if s != 20}),
    }
    rows = depth_order(runs, [20, 56])
    assert rows[1] == ["plain-20 vs plain-56", "higher training error", "3 of 4", "50.00 vs 60.00", "yes"]
    assert rows[2] == ["ResNet-20 vs ResNet-56", "lower training error", "2 of 4", "50.00 vs 30.00", "yes"]
    runs["resnet56"] = _Curves({s: 0.3 if s < 80 else 0.55 for s in steps})  # ahead until the last window
    assert depth_order(runs, [20, 56])[2][2:] == ["3 of 4", "50.00 vs 55.00", "no"]
    # Neighbouring depths only: 20 vs 32 and 32 vs 56.
    runs |= {"plain32": runs["plain20"], "resnet32": runs["resnet20"]}
    assert [r[0] for r in depth_order(runs, [20, 32, 56])[1:]] == [
        "plain-20 vs plain-32",
        "plain-32 vs plain-56",
        "ResNet-20 vs ResNet-32",
        "ResNet-32 vs ResNet-56",
    ]


def test_runs_of_different_lengths_are_compared_at_the_same_point_of_their_schedules() -> None:
    """A time limit gives the deeper net more or fewer steps: window k of 8 of one run meets window k of
    the other, not the window that happens to share its step number."""
    from resnet.experiments import depth_order

    short = {s: 0.5 for s in range(10, 90, 10)}  # 80 steps
    # 160 steps: worse than 0.5 over its first 80, better over its second half (its LR drops fall there)
    long = {s: 0.6 if s <= 80 else 0.4 for s in range(20, 180, 20)}
    runs = {"resnet20": _Curves(short), "resnet56": _Curves(long)}
    assert depth_order(runs, [20, 56])[1][2:] == ["4 of 4", "50.00 vs 40.00", "yes"]
    # Matched by step number instead, the long run's first half (0.6) would have met the short one's end.


def test_a_short_last_window_is_folded_into_the_one_before() -> None:
    """A run of 5,201 steps logged every 50 ends with a window of one batch: its error is noise."""
    from resnet.experiments import train_windows

    run = _Curves({50: 0.30, 100: 0.20, 101: 1.00})
    assert train_windows(run) == [(50 / 101, 0.30), (1.0, pytest.approx((0.20 * 50 + 1.00) / 51))]
    whole = _Curves({50: 0.30, 100: 0.20, 150: 0.10})  # equal windows stay as they are
    assert train_windows(whole) == [(1 / 3, 0.30), (2 / 3, 0.20), (1.0, 0.10)]


def test_the_command_writes_and_prints_the_depth_order(degradation_dir: Path) -> None:
    rows = json.loads((degradation_dir / "depth_order.json").read_text())["rows"]
    assert [r[0] for r in rows[1:]] == ["plain-8 vs plain-20", "ResNet-8 vs ResNet-20"]
    assert "| ResNet-8 vs ResNet-20 |" in (degradation_dir / "report" / "report.md").read_text()


def test_one_half_of_figure6_trains_only_its_nets_and_they_are_the_same_runs(
    degradation_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "resnets"
    assert main(["experiment", "degradation", "--depths", "8,20", "--nets", "resnet", "--out", str(out), *TINY]) == 0
    assert sorted(p.name for p in out.iterdir() if (p / "config.json").is_file()) == ["resnet20", "resnet8"]
    for name in ("resnet8", "resnet20"):  # same options and seed as the full experiment's: the same runs
        assert _val_errors(out / name) == _val_errors(degradation_dir / name)
    rows = json.loads((out / "table6.json").read_text())["rows"]
    full = json.loads((degradation_dir / "table6.json").read_text())["rows"]
    for row, full_row in zip(rows[1:], full[1:]):
        assert row[2:4] == ["-", "-"] and row[1] == full_row[1] and row[4:] == full_row[4:]
    checks = json.loads((out / "depth_order.json").read_text())["rows"]
    assert [r[0] for r in checks[1:]] == ["ResNet-8 vs ResNet-20"]
    assert set(json.loads((out / "figure6.json").read_text())) == {"ResNet"}
    assert "plain-8 vs plain-20" not in capsys.readouterr().out


def test_figure6_data_are_the_runs_curves(degradation_dir: Path) -> None:
    data = json.loads((degradation_dir / "figure6.json").read_text())
    assert set(data) == {"plain", "ResNet"}
    assert set(data["plain"]) == {"plain-8", "plain-20"} and set(data["ResNet"]) == {"ResNet-8", "ResNet-20"}
    curve = data["ResNet"]["ResNet-20"]
    assert curve["val_steps"] == [10, 20] and curve["val_error"] == _val_errors(degradation_dir / "resnet20")
    assert curve["train_steps"] == [5, 10, 15, 20]
    assert (degradation_dir / "figure6.png").stat().st_size > 10_000
    html = (degradation_dir / "report" / "report.html").read_text()
    assert "Table 6" in html and "plain20" in html


def test_an_interrupted_experiment_continues_and_finished_runs_are_kept(degradation_dir: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "again"
    shutil.copytree(degradation_dir, out)
    kept = (out / "resnet8" / "summary.json").stat().st_mtime_ns
    # plain20 "was killed" after its last checkpoint but before its summary; plain8 before starting.
    (out / "plain20" / "summary.json").unlink()
    shutil.rmtree(out / "plain8")
    assert main(["experiment", "degradation", "--depths", "8,20", "--out", str(out), *TINY]) == 0
    assert (out / "resnet8" / "summary.json").stat().st_mtime_ns == kept
    assert (out / "plain20" / "summary.json").is_file() and (out / "plain8" / "summary.json").is_file()
    # The resumed run did not train again from scratch: its validation records are not duplicated.
    assert _val_errors(out / "plain20") == _val_errors(degradation_dir / "plain20")
    # Same seed, same data: the restarted run reproduces the original exactly.
    assert _val_errors(out / "plain8") == _val_errors(degradation_dir / "plain8")


def test_shortcut_options_have_their_parameter_counts(tmp_path: Path) -> None:
    out = tmp_path / "shortcuts"
    assert main(["experiment", "shortcuts", "--model", "resnet20", "--out", str(out), *TINY]) == 0
    rows = json.loads((out / "shortcuts.json").read_text())["rows"]
    assert [r[0] for r in rows[1:]] == ["A", "B", "C"]
    counts = {r[0]: int(r[1].replace(",", "")) for r in rows[1:]}
    for option, count in counts.items():
        model = create_model("resnet20", shortcut=option, num_classes=10, in_channels=1)
        assert count == sum(p.numel() for p in model.parameters())
    assert counts["A"] < counts["B"] < counts["C"]
    for option in "ABC":
        assert load_run(out / f"resnet20-{option}").config["shortcut"] == option


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--depths", "21"], "6n+2"),
        (["--depths", "20,x"], "--depths"),
        (["--set", "nonsense"], "OPTION=VALUE"),
        (["--set", "no_such_option=1"], "no_such_option"),
        (["--nets", "deep"], "--nets"),
        (["--nets", ","], "--nets"),
    ],
)
def test_bad_experiment_options_are_one_line_errors(tmp_path, capsys, argv, message) -> None:
    assert main(["experiment", "degradation", "--data", "digits", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error:") and message in err and "\n" not in err


def test_short_modes_change_only_length_data_part_augmentation_lr_warmup_and_speed(monkeypatch, tmp_path: Path) -> None:
    import resnet.experiments as E

    base = E._base_options("cifar-paper", {"data": "imagefolder", "data_dir": "d"}, E.MODES["quick"], None)
    cfg = resolve({**base, "model": "resnet56"})
    # What the modes keep from the paper's recipe ...
    assert (cfg.batch_size, cfg.momentum, cfg.weight_decay) == (128, 0.9, 1e-4)
    assert (cfg.schedule, cfg.gamma, cfg.milestones, cfg.val_split) == ("multistep", 0.1, (0.5, 0.75), 5000)
    # ... and what they change: length, a seeded part of the training images seen as they are, the peak
    # LR, a short warm-up for every network instead of the ResNet-110 rule, and speed options.
    assert (cfg.iterations, cfg.train_subset, cfg.augment, cfg.lr) == (640, 2500, "none", 0.02)
    assert (cfg.warmup_iterations, cfg.warm_rule) == (100, "off")
    assert not cfg.uses_warm_rule and (cfg.precision, cfg.channels_last) == ("native", "on")
    assert E.MODES["medium"] == E.MODES["quick"] and E.MODE_DEPTHS["medium"] == [20, 32, 44, 56]
    # --set still wins, and the digits keep all their training images.
    digits = E._base_options("cifar-paper", {"data": "digits"}, E.MODES["quick"], {"iterations": "7"})
    assert digits["iterations"] == "7" and digits["train_subset"] is None and digits["val_split"] == 0.2

    # Every network of an experiment gets the same options but its name.
    class Stop(Exception):
        pass

    def capture(jobs, parallel, time_limit=None):
        seen_jobs.extend(jobs)
        raise Stop

    monkeypatch.setattr(E, "run_all", capture)
    for mode in ("quick", None):
        seen_jobs: list = []
        with pytest.raises(Stop):
            degradation([20, 56], {"data": "digits"}, tmp_path, mode=mode)
        options = {key: opts for key, opts, _, _ in seen_jobs}
        assert sorted(options) == ["plain20", "plain56", "resnet20", "resnet56"]
        assert [options[k]["model"] for k in sorted(options)] == ["plain20", "plain56", "resnet20", "resnet56"]
        others = [{k: v for k, v in o.items() if k != "model"} for o in options.values()]
        assert all(o == others[0] for o in others) and others[0].get("iterations") == (640 if mode else None)

    seen = {}
    monkeypatch.setattr(
        E,
        "degradation",
        lambda depths, data, out, mode, overrides, parallel, kinds, time_limit: (
            seen.update(depths=depths, mode=mode, kinds=kinds)
            or E.ExperimentResult(Path(out), {}, [["depth"]], None, None)
        ),
    )
    assert main(["experiment", "degradation", "--medium", "--data", "digits", "--out", str(tmp_path)]) == 0
    assert seen == {"depths": [20, 32, 44, 56], "mode": "medium", "kinds": ("plain", "resnet")}
    assert (
        main(
            [
                "experiment",
                "degradation",
                "--quick",
                "--depths",
                "20",
                "--data",
                "digits",
                "--out",
                str(tmp_path),
                "--nets",
                "ResNet, resnet",
            ]
        )
        == 0
    )
    assert seen == {"depths": [20], "mode": "quick", "kinds": ("resnet",)}
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "degradation", "--quick", "--medium", "--data", "digits"])
    assert stop.value.code == 2


def test_runs_side_by_side_are_the_runs_trained_one_at_a_time(tmp_path: Path, caplog) -> None:
    threads = torch.get_num_threads()
    args = ["experiment", "degradation", "--depths", "8", *TINY]
    try:
        torch.set_num_threads(1)
        assert main([*args, "--out", str(tmp_path / "serial")]) == 0
        torch.set_num_threads(2)  # --jobs 2 gives each of its two processes one thread
        with caplog.at_level("INFO"):
            assert main([*args, "--out", str(tmp_path / "parallel"), "--jobs", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "training 2 runs, 2 at a time with 1 thread(s) each" in caplog.text
    for name in ("plain8", "resnet8"):
        serial, parallel = (read_metrics(tmp_path / mode / name / "metrics.jsonl") for mode in ("serial", "parallel"))
        assert [r["step"] for r in parallel] == [r["step"] for r in serial] and len(serial) > 4
        for a, b in zip(serial, parallel):
            assert b.get("loss", b.get("val_loss")) == pytest.approx(a.get("loss", a.get("val_loss")), rel=1e-5)
    table = lambda mode: json.loads((tmp_path / mode / "table6.json").read_text())["rows"]  # noqa: E731
    assert table("parallel") == table("serial")


def test_degradation_needs_a_depth() -> None:
    with pytest.raises(ResNetError, match="at least one depth"):
        degradation([], {"data": "digits"}, "unused")


def test_analyze_responses_cli_measures_the_runs_validation_images(degradation_dir: Path, tmp_path: Path) -> None:
    from resnet.analysis.responses import layer_responses
    from resnet.data import Normalization, make_eval_loader
    from resnet.eval_data import checkpoint_split
    from resnet.evaluate import model_from_checkpoint

    runs = [str(degradation_dir / "plain20"), str(degradation_dir / "resnet20")]
    assert main(["analyze", "responses", *runs, "--images", "100", "--batch-size", "50", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "responses.json").read_text())
    assert set(saved) == {"plain20", "resnet20"}
    model, meta = model_from_checkpoint(runs[1])
    split = checkpoint_split(meta, "val")
    loader = make_eval_loader(
        split, 50, protocol="single", normalization=Normalization.from_dict(meta["normalization"])
    )
    batches = [b for _, b in zip(range(2), loader)]
    direct = layer_responses(model, batches)
    assert len(saved["resnet20"]) == 19  # conv1 and the 18 3x3 layers of the blocks
    assert [r["std"] for r in saved["resnet20"]] == pytest.approx([r.std for r in direct], rel=1e-5)
    assert (tmp_path / "responses.png").is_file() and "resnet20" in (tmp_path / "responses.md").read_text()


def test_analyze_gradients_cli_writes_a_profile_per_model_and_step(tmp_path: Path) -> None:
    argv = ["analyze", "gradients", "plain20", "resnet20", "--steps", "2", "--batch-size", "32", "--out", str(tmp_path)]
    assert main(argv) == 0
    profiles = json.loads((tmp_path / "gradients.json").read_text())
    assert [(p["model"], p["step"]) for p in profiles] == [
        ("plain20", 0),
        ("plain20", 2),
        ("resnet20", 0),
        ("resnet20", 2),
    ]
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in create_model("resnet20").modules())
    assert all(len(p["norms"]) == convs and all(n > 0 for n in p["norms"]) for p in profiles)
    assert (tmp_path / "gradients.png").is_file()


# -- runs side by side stop cleanly -----------------------------------------------------------------

LONG_RUNS = [
    "experiment",
    "degradation",
    "--data",
    "digits",
    "--quiet",
    "--jobs",
    "2",
    "--set",
    "iterations=100000",
    "--set",
    "log_every=1",
    "--set",
    "eval_every=100000",
    "--set",
    "batch_size=32",
]


def _start_side_by_side(out: Path, depths: str, err: Path, **popen):
    """The experiment command, once two runs train side by side (a record in each metrics.jsonl)."""
    from test_train_ddp_signals import _alive, _children, _env, _wait_for

    command = subprocess.Popen(
        [sys.executable, "-m", "resnet", *LONG_RUNS, "--depths", depths, "--out", str(out)],
        env={**_env(), "OMP_NUM_THREADS": "2"},
        stdout=subprocess.DEVNULL,
        stderr=err.open("w"),
        **popen,
    )
    training = lambda: sum(bool(read_metrics(p)) for p in out.glob("*/metrics.jsonl")) == 2  # noqa: E731
    assert _wait_for(lambda: training() or command.poll() is not None, 180) and command.poll() is None, err.read_text()[
        -3000:
    ]
    workers = [p for p in _children(command.pid) if _alive(p)]
    return command, workers


def test_side_by_side_runs_save_and_stop_when_the_command_is_killed(tmp_path: Path) -> None:
    from test_train_ddp_signals import _alive, _wait_for

    out = tmp_path / "exp"
    command, workers = _start_side_by_side(out, "8", tmp_path / "err.txt")
    try:
        command.kill()  # SIGKILL: the command cannot tell its runs to stop
        command.wait(30)
        assert _wait_for(lambda: not any(_alive(p) for p in workers), 60), "runs outlived the command"
        for run in ("plain8", "resnet8"):
            assert (out / run / "last.safetensors").is_file()  # stopped at a step, with its checkpoint
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_ctrl_c_stops_the_runs_in_progress_and_starts_no_other(tmp_path: Path) -> None:
    from test_train_ddp_signals import _alive, _wait_for

    out, err = tmp_path / "exp", tmp_path / "err.txt"
    command, workers = _start_side_by_side(out, "8,20", err, start_new_session=True)
    try:
        os.killpg(command.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        assert command.wait(120) == 130
        assert _wait_for(lambda: not any(_alive(p) for p in workers), 30)
        text = err.read_text()
        assert "Traceback" not in text and text.strip().splitlines()[-1].startswith("resnet: "), text[-3000:]
        # The two deepest runs were in progress and saved; the two waiting ones never started.
        assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["plain20", "resnet20"]
        assert all((out / run / "last.safetensors").is_file() for run in ("plain20", "resnet20"))
    finally:
        for pid in [command.pid, *workers]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_run_stopped_by_a_signal_keeps_its_process_from_starting_the_next(monkeypatch, tmp_path: Path) -> None:
    # The worker takes the next queued run as soon as its run returns, possibly before the command has
    # set the stop event after Ctrl-C; a stopped run sets it itself, so the next one is not started.
    import threading

    from resnet import experiments as E
    from resnet.train.trainer import Interrupted

    stop, started = threading.Event(), []

    def stopped_run(options, run_dir):
        started.append(run_dir)
        raise Interrupted("stopped at step 3/10; checkpoint saved")

    monkeypatch.setattr(E, "run_or_resume", stopped_run)
    monkeypatch.setattr(E, "_STOP", stop)
    monkeypatch.setattr(E, "_COMMAND_PID", None)
    with pytest.raises(Interrupted):
        E._run_side_by_side({}, tmp_path / "plain20")
    assert stop.is_set()
    with pytest.raises(Interrupted, match="not started"):
        E._run_side_by_side({}, tmp_path / "plain8")
    assert started == [tmp_path / "plain20"]


def test_the_experiment_says_its_plan_which_run_is_running_and_an_eta(monkeypatch, tmp_path: Path, caplog) -> None:
    """Issue 22 item 9: how many runs, 'run 2 of 4', and the ETA of the whole from the runs so far."""
    from resnet import experiments as E

    now = [1000.0]
    trained: list[str] = []

    def stand_in(options, run_dir):  # 10 s of the clock per unit of cost (the depth); a finished run: none
        trained.append(run_dir.name)
        now[0] += 0 if (run_dir / "summary.json").exists() else 10 * options["depth"]
        return run_dir

    monkeypatch.setattr(E, "_clock", lambda: now[0])
    monkeypatch.setattr(E, "run_or_resume", stand_in)
    (tmp_path / "plain20").mkdir()
    (tmp_path / "plain20" / "summary.json").write_text("{}")  # finished earlier: no time, no cost
    jobs = [(f"{k}{d}", {"depth": d}, tmp_path / f"{k}{d}", d) for d in (20, 56) for k in ("plain", "resnet")]
    with caplog.at_level("INFO", logger="resnet.experiments"):
        E.run_all(jobs)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "experiment: 4 runs (plain20, resnet20, plain56, resnet56), 1 finished earlier and kept; "
        "3 to train, one at a time; ETA after the first run"
    )
    assert lines[1] == f"run 1 of 4: plain20 ({tmp_path / 'plain20'})"
    assert lines[2] == "run 1 of 4 done (plain20, finished earlier); 3 runs left"
    assert lines[3] == f"run 2 of 4: resnet20 ({tmp_path / 'resnet20'})"
    # 200 s for a cost of 20: the two 56-layer runs, 112 cost units, take about 1120 s more.
    assert lines[4].startswith(
        "run 2 of 4 done (resnet20), 3 min 20 s so far; 2 runs left, about 18 min 40 s more (ETA "
    )
    assert lines[6].startswith("run 3 of 4 done (plain56), 12 min 40 s so far; 1 run left, about 9 min 20 s more")
    assert lines[-1] == "run 4 of 4 done (resnet56): the experiment's runs are all done, in 22 min 00 s"
    assert trained == ["plain20", "resnet20", "plain56", "resnet56"]  # the stand-in decides what is reused


def test_a_time_limited_experiment_shares_the_time_by_cost(monkeypatch, tmp_path: Path, caplog) -> None:
    """--time-limit: each run starts with its cost's share of the time left; one that ends early leaves
    its time to the others; resumed and reused runs are handed over as they are."""
    from resnet import experiments as E

    now = [1000.0]
    given: dict[str, float] = {}

    def stand_in(options, run_dir):  # each run takes 90% of the time it is given
        given[run_dir.name] = options["time_limit"]
        now[0] += 0.9 * options["time_limit"]
        return run_dir

    monkeypatch.setattr(E, "_clock", lambda: now[0])
    monkeypatch.setattr(E, "run_or_resume", stand_in)
    jobs = [(f"{k}{d}", {"depth": d}, tmp_path / f"{k}{d}", d) for d in (20, 56) for k in ("plain", "resnet")]
    E.run_all(jobs, time_limit=1520.0)
    left, expected = 1520.0, {}
    for key, cost in (("plain20", 20), ("resnet20", 20), ("plain56", 56), ("resnet56", 56)):
        costs = {"plain20": 20, "resnet20": 20, "plain56": 56, "resnet56": 56}
        rest = sum(c for k, c in costs.items() if k not in expected)
        expected[key] = left * cost / rest
        left -= 0.9 * expected[key]
    assert given == pytest.approx(expected)
    assert given["plain20"] == pytest.approx(200.0)  # 1520 s x 20/152
    assert sum(0.9 * t for t in given.values()) <= 1520.0
    with pytest.raises(ResNetError, match="--time-limit shares the time between runs trained one at a time"):
        E.run_all(jobs, parallel=2, time_limit=60.0)
    # Runs that overran leave nothing for the next: one line, and the finished runs are kept.
    now[0], given = 1000.0, {}
    monkeypatch.setattr(E, "run_or_resume", lambda options, run_dir: now.__setitem__(0, now[0] + 100) or run_dir)
    with pytest.raises(ResNetError, match=r"^--time-limit 50 s: the experiment's time is spent before resnet20"):
        E.run_all(jobs, time_limit=50.0)


def test_a_time_limited_degradation_is_the_papers_recipe_on_all_images(monkeypatch, tmp_path: Path) -> None:
    import resnet.experiments as E

    class Stop(Exception):
        pass

    seen: dict = {}

    def capture(jobs, parallel, time_limit=None):
        seen.update(jobs={key: options for key, options, _, _ in jobs}, time_limit=time_limit)
        raise Stop

    monkeypatch.setattr(E, "run_all", capture)
    data = {"data": "imagefolder", "data_dir": "d"}
    with pytest.raises(Stop):
        degradation([20, 56], data, tmp_path, time_limit=3600.0)
    assert seen["time_limit"] == 3600.0 and sorted(seen["jobs"]) == ["plain20", "plain56", "resnet20", "resnet56"]
    cfg = resolve({**seen["jobs"]["resnet56"], "time_limit": 900.0})
    assert (cfg.time_limit, cfg.iterations, cfg.epochs) == (900.0, None, None)
    assert (cfg.train_subset, cfg.augment) == (None, "cifar")
    assert (cfg.lr, cfg.milestones, cfg.batch_size, cfg.precision, cfg.channels_last) == (
        0.1,
        (0.5, 0.75),
        128,
        "native",
        "on",
    )
    for mode, overrides in (("quick", None), (None, {"iterations": 10})):
        with pytest.raises(ResNetError, match="^--time-limit fits the paper's schedule"):
            degradation([20], data, tmp_path, mode=mode, overrides=overrides, time_limit=60.0)
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "degradation", "--data", "digits", "--time-limit", "soon"])
    assert stop.value.code == 2
