"""--time-limit: the length planned from the measured speed (a stand-in speed here), kept by a resume.

The real timing is a benchmark (benchmarks/time_to_accuracy.py); these tests fix the machine's speed
so that the plan is exact arithmetic.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from conftest import TINY_TRAIN, after_step, crash_after, tiny_train_args
from resnet.checkpoints import load_checkpoint
from resnet.cli import main
from resnet.errors import ResNetError
from resnet.option_types import duration_seconds
from resnet.train import resolve, train
from resnet.train import time_limit as TL
from resnet.train.schedule import build_schedule
from resnet.train.trainer import Trainer

TIMED = {k: v for k, v in TINY_TRAIN.items() if k != "iterations"}  # 44 steps per epoch, validation every 20


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("30m", 1800), ("1.5h", 5400), ("1h30m", 5400), ("2m30s", 150), ("45", 45), (12, 12)],
)
def test_durations(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "0", "-5", "abc", "1x", "30 min", "1h30", "2m5", float("inf")])
def test_bad_durations_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        duration_seconds(text)


def test_a_limit_from_a_file_or_the_command_line(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('time_limit = "30m"\n')
    cfg = resolve({"recipe": "cifar-fast", "data_dir": "/x"}, f)
    assert (cfg.time_limit, cfg.epochs, cfg.iterations) == (1800.0, None, None)  # the recipe's 24 epochs off
    assert resolve({"time_limit": "1h"}).time_limit == 3600.0
    with pytest.raises(ResNetError, match=r"^option 'time-limit': must be a duration"):
        resolve({"time_limit": "soon"})
    with pytest.raises(ResNetError, match="--time-limit 30.0 min and --epochs 3 both set the training length"):
        resolve({"time_limit": "30m", "epochs": 3})


def test_the_plan_is_the_most_steps_that_fit():
    costs = TL.Costs(step_s=0.1, val_s=1.0, final_s=2.0)
    # 890 steps: 89 s, validations at 100, ..., 800 and at 890 (9 s), the final test 2 s: exactly 100 s.
    assert TL.plan_length(100.0, 0, costs, eval_every=100) == 890
    assert TL.validations(0, 890, 100) == 9 and TL.validations(0, 900, 100) == 9 and TL.validations(5, 5, 100) == 0
    for total in (890, 891):
        spent = total * 0.1 + TL.validations(0, total, 100) * 1.0 + 2.0
        assert (spent <= 100.0) == (total == 890)
    # Steps already taken stay; nothing left gives no more steps.
    assert TL.plan_length(100.0, 40, costs, eval_every=100) == 40 + 880  # and 10 validations: 100 s
    assert TL.plan_length(1.0, 40, costs, eval_every=100) == 40


def test_too_short_for_one_epoch_is_one_line():
    with pytest.raises(ResNetError) as e:
        TL.make_plan(60.0, 10.0, 20, TL.Costs(0.5, 1.0, 0.0), eval_every=200, steps_per_epoch=200, batch_size=128)
    text = str(e.value)
    assert text.startswith("option 'time-limit': 60 s is too short for one epoch on this machine: 256 img/s")
    assert "give at least" in text and "\n" not in text


@pytest.fixture
def stand_in_speed(monkeypatch):
    """This machine, as the plan sees it: steps of 10 ms, validations of 0.1 s, 2 s spent before the
    first step. The run's clocks follow it (its training time, the time since it started), so that a
    plan checked against the pace made since is exact arithmetic too."""
    from resnet.train.run_time import RunTime

    speed = {"step_s": 0.01, "val_s": 0.1, "elapsed_s": 2.0}
    monkeypatch.setattr(TL.StepClock, "step_s", property(lambda self: speed["step_s"]))
    monkeypatch.setattr(Trainer, "_eval_seconds", lambda self, loader: speed["val_s"])

    def add_step(self, seconds):
        self.train_s += speed["step_s"]
        self.steps += 1

    real_validate = Trainer._validate

    def validate(self, stream):
        result = real_validate(self, stream)
        self.last_val_s = speed["val_s"]
        self.stand_in_val_s = getattr(self, "stand_in_val_s", 0.0) + speed["val_s"]
        return result

    def elapsed(self):  # this session's: from the first call on (a resume starts a new one)
        start = self.__dict__.setdefault("stand_in_start", self.run_time.train_s)
        return speed["elapsed_s"] + self.run_time.train_s - start + getattr(self, "stand_in_val_s", 0.0)

    monkeypatch.setattr(RunTime, "add_step", add_step)
    monkeypatch.setattr(Trainer, "_validate", validate)
    monkeypatch.setattr(Trainer, "_elapsed", elapsed)
    # The plan waits for 200 timed steps or the first validation or checkpoint, however fast this machine is.
    monkeypatch.setattr(TL, "MIN_MEASURED_S", float("inf"))
    return speed


def test_a_time_limited_run_plans_its_length_and_keeps_it_in_the_run(tmp_path, stand_in_speed):
    run = tmp_path / "run"
    result = train(resolve({**TIMED, "time_limit": 10, "run_dir": str(run)}))
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    plan = resolved["time_plan"]
    # Planned at the first validation (step 20: the tiny steps are not yet enough to average over),
    # with 10 - 2.2 s elapsed - 5 s kept back - 0.1 s for that validation = 2.7 s for the rest of the run.
    assert plan["planned_at_step"] == 20
    expected = TL.plan_length(10.0 - (2.2 + 0.1) - 5.0, 20, TL.Costs(0.01, 0.1, 0.0), eval_every=20)
    assert plan["iterations"] == resolved["iterations"] == result.summary["iterations"] == expected
    assert expected == 20 + 180  # 1.8 s of steps and 9 validations (at 40, 60, ..., 200): 2.7 s
    assert resolved["milestone_steps"] == [round(0.5 * expected), round(0.75 * expected)]  # the schedule fits it
    assert load_checkpoint(run / "last.safetensors").state["step"] == expected
    assert result.summary["time_limit_s"] == 10.0
    log = (run / "train.log").read_text()
    assert "time limit 10 s: 4.5 epochs fit (200 iterations): 3,200 img/s measured, 9 validations" in log


def test_a_resume_keeps_the_plan_and_is_bit_identical(tmp_path, stand_in_speed, monkeypatch):
    opts = {**TIMED, "time_limit": 10, "checkpoint_every": 5, "augment": "cifar"}
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(resolve({**opts, "run_dir": str(straight)}))

    trainer = Trainer(resolve({**opts, "run_dir": str(split)}), split)
    crash_after(trainer, monkeypatch, 37)
    with pytest.raises(RuntimeError):
        trainer.fit()
    stand_in_speed["step_s"] = 1.0  # a resume never measures again: this speed would plan 0 steps
    result = train(resume=split)
    a, b = load_checkpoint(straight / "last.safetensors"), load_checkpoint(split / "last.safetensors")
    # Planned at step 5, the first checkpoint: 195 steps and 10 validations (at 20, 40, ..., 200) in 3 s.
    assert a.state["step"] == b.state["step"] == result.summary["iterations"] == 200
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    plan = json.loads((split / "config.json").read_text())["resolved"]["time_plan"]
    assert plan == json.loads((straight / "config.json").read_text())["resolved"]["time_plan"]


def test_a_new_length_on_resume_replaces_the_plan(tmp_path, stand_in_speed):
    run = tmp_path / "run"
    train(resolve({**TIMED, "time_limit": 10, "run_dir": str(run)}))
    result = train(resume=run, iterations=300)
    resolved = json.loads((run / "config.json").read_text())
    assert result.summary["iterations"] == 300
    assert (resolved["time_limit"], resolved["resolved"]["time_plan"]) == (None, None)


def test_a_stop_before_the_plan_saves_a_planned_checkpoint(tmp_path, stand_in_speed, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(resolve({**TIMED, "time_limit": 10, "run_dir": str(run)}), run)
    monkeypatch.setattr(trainer, "_stop_requested", lambda flag: trainer.step == 6)
    # Planned from the step time alone (no evaluation loaders are started at a stop): 10 - 2.06 s in - 5 s
    # kept back = 2.94 s of 10 ms steps.
    planned = TL.plan_length(2.94, 6, TL.Costs(0.01, 0.0, 0.0), eval_every=20)
    with pytest.raises(Exception, match=f"stopped at step 6/{planned}"):
        trainer.fit()
    assert load_checkpoint(run / "last.safetensors").state["step"] == 6
    assert json.loads((run / "config.json").read_text())["resolved"]["iterations"] == planned == 300


def test_a_limit_too_short_is_one_line_from_the_command(tmp_path, stand_in_speed, capsys):
    stand_in_speed["step_s"] = 1.0  # 44 s an epoch
    assert main(tiny_train_args(tmp_path / "run", iterations="none", time_limit="30s")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("resnet: error: option 'time-limit': 30 s is too short for one epoch on this machine")
    stand_in_speed["elapsed_s"] = 40.0
    assert main(tiny_train_args(tmp_path / "run2", iterations="none", time_limit="30s")) == 2
    assert "30 s was spent before the first step" in capsys.readouterr().err


def test_a_run_that_falls_behind_its_plan_is_shortened_to_end_in_time(tmp_path, stand_in_speed, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(resolve({**TIMED, "time_limit": 10, "run_dir": str(run)}), run)
    # From step 61 another job runs beside it: five times slower.
    after_step(trainer, monkeypatch, 61, lambda: stand_in_speed.update(step_s=0.05))
    result = trainer.fit()
    plan = json.loads((run / "config.json").read_text())["resolved"]["time_plan"]
    # Planned at step 20 (2.2 s in, 0.1 s for its validation: 2.7 s left), on pace until 60; checked at
    # the validation at 80: 2.2 + 0.4 + 1.0 s of steps + 0.1 x 3 validations = 3.9 s in, 0.1 s for this
    # one's: 1.0 s left at 0.05 s a step.
    shortened = TL.plan_length(10.0 - 3.9 - 0.1 - 5.0, 80, TL.Costs(0.05, 0.1, 0.0), 20)
    first = TL.plan_length(2.7, 20, TL.Costs(0.01, 0.1, 0), 20)
    assert plan["planned_at_step"] == 20 and plan["changes"] == [[80, first, shortened]] and shortened < first
    assert plan["iterations"] == result.summary["iterations"] == shortened
    # What the limit asks: the stand-in clock ends within 10 s, less the 5 s kept back.
    assert 2.0 + trainer.run_time.train_s <= 10.0 - TL.margin_s(10.0)
    log = (run / "train.log").read_text()
    assert "behind the time limit's plan (640 img/s since the last check, 3,200 planned)" in log


def test_a_stop_before_the_plan_saves_even_where_no_epoch_fits(tmp_path, stand_in_speed, monkeypatch):
    """Ctrl-C before the plan is a checkpoint and the resume line, not the too-short error."""
    stand_in_speed["step_s"] = 1.0  # 44 s an epoch: too short for the 10 s limit
    run = tmp_path / "run"
    trainer = Trainer(resolve({**TIMED, "time_limit": 10, "run_dir": str(run)}), run)
    monkeypatch.setattr(trainer, "_stop_requested", lambda flag: trainer.step == 2)
    # 10 - 4 s in - 5 s kept back: 1 s of 1 s steps.
    with pytest.raises(Exception, match=r"stopped at step 2/3; checkpoint saved"):
        trainer.fit()
    assert load_checkpoint(run / "last.safetensors").state["step"] == 2


def test_a_run_whose_first_steps_were_slow_is_lengthened_to_use_its_time(tmp_path, stand_in_speed, monkeypatch):
    stand_in_speed["step_s"] = 0.05  # the first steps of a new process: five times slower than the rest
    run = tmp_path / "run"
    trainer = Trainer(resolve({**TIMED, "time_limit": 20, "run_dir": str(run)}), run)
    after_step(trainer, monkeypatch, 21, lambda: stand_in_speed.update(step_s=0.01))  # steps 21 on
    result = trainer.fit()
    plan = json.loads((run / "config.json").read_text())["resolved"]["time_plan"]
    # Planned at step 20 (3 s in, 0.1 s for that validation, 5 s kept back) at 0.05 s a step; checked
    # at the validation at 40: 3.3 s in, 0.1 s for this one's, the rest at 0.01 s a step.
    first = TL.plan_length(20.0 - 3.0 - 0.1 - 5.0, 20, TL.Costs(0.05, 0.1, 0.0), 20)
    lengthened = TL.plan_length(20.0 - 3.3 - 0.1 - 5.0, 40, TL.Costs(0.01, 0.1, 0.0), 20)
    assert plan["planned_at_step"] == 20 and plan["changes"] == [[40, first, lengthened]]
    assert result.summary["iterations"] == plan["iterations"] == lengthened > 3 * first
    assert 2.0 + trainer.run_time.train_s + trainer.stand_in_val_s <= 20.0 - TL.margin_s(20.0)  # within the limit
    log = (run / "train.log").read_text()
    assert f"ahead of the time limit's plan (3,200 img/s since the last check, 640 planned): {lengthened} " in log
    assert f"instead of {first}" in log


def test_a_shortening_for_a_slow_stretch_is_undone_when_the_pace_comes_back(tmp_path, stand_in_speed, monkeypatch):
    """Twenty slow steps late in the run (another job for a moment) shorten it; at the next check,
    at the plan's pace again, it is lengthened back to use its time, and the LR jumps at neither."""
    cfg = resolve({**TIMED, "time_limit": 20, "schedule": "linear", "run_dir": str(tmp_path / "run")})
    trainer = Trainer(cfg, tmp_path / "run")
    after_step(trainer, monkeypatch, 601, lambda: stand_in_speed.update(step_s=0.05))  # steps 601-620
    after_step(trainer, monkeypatch, 621, lambda: stand_in_speed.update(step_s=0.01))
    result = trainer.fit()
    plan = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["time_plan"]
    # At 620: 2 + 7.0 s of steps + 30 validations = 12.0 s in, 0.1 s for this one's: 2.9 s left at 0.05 s
    # a step. At 640: 12.3 s in, 2.6 s left at the slower of the last 20 steps' 0.01 s and the 7.0 s / 620
    # steps since the plan.
    first = TL.plan_length(20.0 - 2.3 - 5.0, 20, TL.Costs(0.01, 0.1, 0.0), 20)
    shortened = TL.plan_length(20.0 - 12.0 - 0.1 - 5.0, 620, TL.Costs(0.05, 0.1, 0.0), 20)
    back = TL.plan_length(20.0 - 12.3 - 0.1 - 5.0, 640, TL.Costs(7.0 / 620, 0.1, 0.0), 20)
    assert plan["changes"] == [[620, first, shortened], [640, shortened, back]]
    assert shortened < 0.8 * first and back > 1.15 * shortened and result.summary["iterations"] == back
    # The LR at each change is the one the schedule before it had there.
    for k, (at, before, after) in enumerate(plan["changes"]):
        old = build_schedule(cfg, before, plan["changes"][:k])
        new = build_schedule(cfg, after, plan["changes"][: k + 1])
        assert new.lr(at) == pytest.approx(old.lr(at), rel=1e-12) and new.lr(after) == 0.0
    # Within the limit less its margin, and nearly all of it used (the slow steps cost 0.8 s of steps).
    used = 2.0 + trainer.run_time.train_s + trainer.stand_in_val_s
    assert 20.0 - TL.margin_s(20.0) - 0.3 <= used <= 20.0 - TL.margin_s(20.0)


def test_a_resume_after_a_change_of_length_keeps_its_schedule_and_is_bit_identical(
    tmp_path, stand_in_speed, monkeypatch
):
    opts = {**TIMED, "time_limit": 10, "checkpoint_every": 5, "schedule": "linear"}
    straight, split = tmp_path / "straight", tmp_path / "split"
    trainer = Trainer(resolve({**opts, "run_dir": str(straight)}), straight)
    after_step(trainer, monkeypatch, 61, lambda: stand_in_speed.update(step_s=0.05))  # shortened at 80
    trainer.fit()
    stand_in_speed["step_s"] = 0.01
    trainer = Trainer(resolve({**opts, "run_dir": str(split)}), split)
    after_step(trainer, monkeypatch, 61, lambda: stand_in_speed.update(step_s=0.05))
    crash_after(trainer, monkeypatch, 90)
    with pytest.raises(RuntimeError):
        trainer.fit()
    plan = json.loads((split / "config.json").read_text())["resolved"]["time_plan"]
    assert [at for at, before, after in plan["changes"]] == [80]
    result = train(resume=split)
    a, b = load_checkpoint(straight / "last.safetensors"), load_checkpoint(split / "last.safetensors")
    assert a.state["step"] == b.state["step"] == result.summary["iterations"] == plan["iterations"]
    assert all(torch.equal(a.model[k], b.model[k]) for k in a.model)
    # Rebuilt for its length instead, the resumed steps would have run at another LR.
    lrs = [json.loads(line)["lr"] for line in (split / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    cfg = resolve(opts)
    assert lrs[-1] == pytest.approx(build_schedule(cfg, plan["iterations"], plan["changes"]).lr(plan["iterations"] - 1))
    assert lrs[-1] != pytest.approx(build_schedule(cfg, plan["iterations"]).lr(plan["iterations"] - 1))


def test_a_run_folder_whose_length_changes_do_not_add_up_is_one_line(tmp_path, stand_in_speed, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(resolve({**TIMED, "time_limit": 10, "checkpoint_every": 5, "run_dir": str(run)}), run)
    crash_after(trainer, monkeypatch, 30)
    with pytest.raises(RuntimeError):
        trainer.fit()
    config = json.loads((run / "config.json").read_text())
    config["resolved"]["time_plan"]["changes"] = [[25, 300, 250]]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ResNetError, match=r"config.json: time_plan: the length changes \[\[25, 300, 250\]\] do not"):
        train(resume=run)


def test_a_run_slightly_behind_its_plan_keeps_its_length_within_the_limit(tmp_path, stand_in_speed, monkeypatch):
    """A pace 1% off the plan's is the noise of a step's time: not worth a new schedule, while the
    margin kept back still holds it."""
    run = tmp_path / "run"
    trainer = Trainer(resolve({**TIMED, "time_limit": 10, "run_dir": str(run)}), run)
    after_step(trainer, monkeypatch, 21, lambda: stand_in_speed.update(step_s=0.0101))
    result = trainer.fit()
    plan = json.loads((run / "config.json").read_text())["resolved"]["time_plan"]
    # 200 planned (as in the first test); at 0.0101 s a step 198 would fit in the limit less its margin.
    assert TL.plan_length(10.0 - 2.502 - 0.1 - 5.0, 40, TL.Costs(0.0101, 0.1, 0.0), 20) < 200
    assert plan["changes"] == [] and result.summary["iterations"] == 200
    assert 2.0 + trainer.run_time.train_s + trainer.stand_in_val_s <= 10.0  # within the limit itself


def test_the_time_left_counts_the_pace_from_the_plan_not_the_slow_steps_before_it(
    tmp_path, stand_in_speed, monkeypatch
):
    monkeypatch.setattr(TL, "MIN_MEASURED_S", 0.0)  # planned after 3 + 10 steps, before the first validation
    monkeypatch.setattr(TL, "MEASURED_SHARE", 0.0)
    stand_in_speed["step_s"] = 0.05  # the first steps (a compile trial, a new process): slow
    run = tmp_path / "run"
    trainer = Trainer(resolve({**TIMED, "time_limit": 20, "run_dir": str(run)}), run)
    after_step(trainer, monkeypatch, 14, lambda: stand_in_speed.update(step_s=0.01))  # steps 14 on
    result = trainer.fit()
    plan = json.loads((run / "config.json").read_text())["resolved"]["time_plan"]
    assert plan["planned_at_step"] == 13
    first = next(r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "val")
    assert first["step"] == 20
    # At the validation at 20 (lengthened there): the steps left at the 0.01 s of the steps since the
    # plan, plus the validations still to come at this machine's real validation time (a few ms here).
    # Counted from step 0 the pace would be (13 x 0.05 + 7 x 0.01) / 20 = 0.036 s: 29 s for the steps.
    total = json.loads((run / "config.json").read_text())["resolved"]["iterations"]
    assert total == result.summary["iterations"] and [at for at, before, after in plan["changes"]] == [20]
    steps_s = (total - 20) * 0.01
    assert steps_s - 0.05 <= first["eta_s"] < 2 * steps_s


def test_a_plan_saved_before_changes_were_recorded_still_loads():
    """Such a run rebuilt its schedule for each new length: with no changes, so is the resumed one's."""
    old = {
        "limit_s": 1800.0, "iterations": 16031, "planned_at_step": 100, "elapsed_s": 30.0, "step_s": 0.1,
        "images_per_s": 1280.0, "val_s": 1.0, "validations": 46, "final_s": 2.0,
        "shortened_at": [15093], "lengthened_at": [351, 702],
    }  # fmt: skip
    plan = TL.TimePlan.from_dict(old)
    assert plan is not None and plan.changes == [] and plan.iterations == 16031
    assert TL.TimePlan.from_dict({**old, "bogus": 1}) is None
