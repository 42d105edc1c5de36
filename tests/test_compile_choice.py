"""--compile auto: compiled where the run is long enough to pay, kept only where measured faster.

Stand-ins: torch.compile returns the module as it is, wrapped (compiling is slow and its speed is the
machine's), and the step times are fixed, eager 20 ms and compiled 10 ms (or 30 ms).
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY_TRAIN
from resnet.device import resolve_speed
from resnet.train import compile_choice, compile_memory, resolve, train
from resnet.train import time_limit as TL
from resnet.train.compile_choice import AutoCompile
from resnet.train.compile_memory import CompileMemory, processor, trial_key
from resnet.train.trainer import Trainer

CPU_BF16 = resolve_speed("cpu", "bf16", "on", "auto")
CPU_FP32 = resolve_speed("cpu", "fp32", "on", "auto")


@pytest.mark.parametrize(
    "speed, minutes, pays",
    [(CPU_BF16, 30, True), (CPU_BF16, 5, False), (CPU_FP32, 30, False), (CPU_FP32, 120, True)],
)
def test_compiling_is_tried_where_the_steps_left_repay_it_twice(speed, minutes, pays):
    decided, why = compile_choice.worth_trying(speed, minutes * 60.0)
    assert decided is pays
    assert why.startswith(f"~{TL.describe_duration(minutes * 60.0)} of steps left; compiling saves ~")


@pytest.fixture
def stand_ins(monkeypatch, tmp_path):
    """torch.compile wraps the network as it is; a step takes 20 ms eager, ``compiled_ms`` compiled; compiling
    pays; the trials are kept in this test's own cache folder."""
    state = {"trainer": None, "compiled_ms": 10.0, "compiled": 0}
    monkeypatch.setenv("RESNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(compile_memory, "busy", lambda: None)  # (the suite may share the machine)

    def fake_compile(module):
        state["compiled"] += 1
        return torch.nn.Sequential(module)  # another module, calling the same network

    def step_s(clock):
        trainer = state["trainer"]
        return (state["compiled_ms"] if trainer is not None and trainer.speed.compile else 20.0) / 1000

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(TL.StepClock, "step_s", property(step_s))
    monkeypatch.setitem(compile_choice.MEASURED, ("cpu", "fp32"), (0.5, 0.001))
    monkeypatch.setattr(TL, "MIN_MEASURED_S", 0.0)  # each phase: 3 warm-up steps, then 10 timed ones
    return state


@pytest.mark.parametrize("compiled_ms, kept", [(10.0, True), (30.0, False)])
def test_compile_auto_compiles_and_keeps_it_only_if_faster(tmp_path, stand_ins, compiled_ms, kept):
    stand_ins["compiled_ms"] = compiled_ms
    run = tmp_path / "run"
    trainer, log = _fit_new(run, stand_ins)
    assert stand_ins["compiled"] == 1
    assert (trainer.speed.compile, trainer.run.forward is trainer.run.wrapped) == (kept, not kept)
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert resolved["compile_auto"] == ("on" if kept else "off")
    assert "compile auto: compiling the step (~" in log
    assert f"compile auto: compiled steps {compiled_ms:.1f} ms; timing the eager step again" in log
    ratio = 20.0 / compiled_ms
    expected = "kept" if kept else "off again"
    assert f"compile auto: {expected}: compiled steps {compiled_ms:.1f} ms, eager 20.0 ms ({ratio:.2f}x)" in log

    # A resume takes the decision as it is: compiled from its first step, or never.
    stand_ins["compiled"] = 0
    resumed = Trainer.resume(run, iterations=420)
    assert (resumed.speed.compile, resumed.auto_compile, stand_ins["compiled"]) == (kept, None, int(kept))


def test_a_short_run_stays_eager_and_says_why(tmp_path):
    run = tmp_path / "run"
    train(resolve({**TINY_TRAIN, "iterations": 250, "eval_every": 250, "run_dir": str(run)}))
    log = (run / "train.log").read_text()
    assert "compile auto: off (~" in log and "of steps left; compiling saves ~5% of a step" in log
    assert json.loads((run / "config.json").read_text())["resolved"]["compile_auto"] == "off"


def _fit_new(run, stand_ins, **changes):
    cfg = resolve({**TINY_TRAIN, "iterations": 400, "eval_every": 200, "run_dir": str(run), **changes})
    trainer = Trainer(cfg, run)
    stand_ins["trainer"], stand_ins["compiled"] = trainer, 0
    trainer.fit()
    return trainer, (run / "train.log").read_text()


def test_a_trial_that_lost_is_not_tried_again_on_this_machine(tmp_path, stand_ins):
    stand_ins["compiled_ms"] = 30.0
    _fit_new(tmp_path / "first", stand_ins)
    memory = CompileMemory(tmp_path / "cache")
    ((key, trial),) = json.loads(memory.path.read_text()).items()
    assert (trial["eager_ms"], trial["compiled_ms"]) == (20.0, 30.0)
    assert "cifar_resnet" in key and '"depth": 8' in key and "batch 32" in key and "fp32" in key

    trainer, log = _fit_new(tmp_path / "second", stand_ins)  # the same kind of run
    assert (stand_ins["compiled"], trainer.speed.compile) == (0, False)
    assert "compile auto: off (its compiled step was 0.67x the eager one when this run's kind was tried" in log
    assert f"delete {memory.path} to try again" in log
    assert json.loads((tmp_path / "second" / "config.json").read_text())["resolved"]["compile_auto"] == "off"

    _, log = _fit_new(tmp_path / "deeper", stand_ins, depth=14)  # another network: measured anew
    assert stand_ins["compiled"] == 1 and "compile auto: compiling the step (~" in log
    assert len(json.loads(memory.path.read_text())) == 2


def test_a_trial_that_won_gives_the_next_run_its_measured_gain(tmp_path, stand_ins, monkeypatch):
    _fit_new(tmp_path / "first", stand_ins)  # 20 ms eager, 10 ms compiled: a saving of 50%
    monkeypatch.setitem(compile_choice.MEASURED, ("cpu", "fp32"), (0.3, 0.001))  # the table's guess differs
    trainer, log = _fit_new(tmp_path / "second", stand_ins)
    assert stand_ins["compiled"] == 1 and trainer.speed.compile
    assert "compiling saves ~50% of a step and costs ~0 s on cpu with fp32, its step as measured on this machine" in log


def test_an_unreadable_memory_is_said_and_replaced(tmp_path, stand_ins, caplog):
    memory = CompileMemory(tmp_path / "cache")
    memory.path.parent.mkdir(parents=True)
    memory.path.write_text("{not json")
    with caplog.at_level("WARNING"):
        _, log = _fit_new(tmp_path / "run", stand_ins)
    assert f"compile auto: {memory.path} is unreadable (" in caplog.text and "; measuring again" in caplog.text
    assert stand_ins["compiled"] == 1
    assert len(json.loads(memory.path.read_text())) == 1  # replaced by the trial just measured


def test_the_trial_key_names_what_the_step_times_depend_on():
    net = {"model": "cifar_resnet", "depth": 20}
    key = trial_key(CPU_FP32, net, 128, "32x32")
    assert key.count(" | ") == 6 and f"torch {torch.__version__}" in key and f"{torch.get_num_threads()} threads" in key
    assert processor(torch.device("cpu")) in key
    others = [
        trial_key(CPU_BF16, net, 128, "32x32"),
        trial_key(resolve_speed("cpu", "fp32", "off", "auto"), net, 128, "32x32"),
        trial_key(CPU_FP32, {**net, "depth": 56}, 128, "32x32"),
        trial_key(CPU_FP32, net, 64, "32x32"),
        trial_key(CPU_FP32, net, 128, "224x224"),
    ]
    assert len({key, *others}) == 6


def test_a_trial_on_a_busy_machine_is_not_kept(tmp_path, stand_ins, monkeypatch, caplog):
    monkeypatch.setattr(compile_memory, "busy", _loaded)
    with caplog.at_level("WARNING"):
        _fit_new(tmp_path / "run", stand_ins)
    assert stand_ins["compiled"] == 1
    assert not CompileMemory(tmp_path / "cache").path.exists()
    assert "the trial is not kept for the next run: the machine is busy (load average 4.0 on 2 CPUs)" in caplog.text


def _loaded() -> str | None:
    return "load average 4.0 on 2 CPUs"


def test_busy_compares_the_load_average_with_the_cpus(monkeypatch):
    monkeypatch.setattr(compile_memory.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(compile_memory.os, "getloadavg", lambda: (2.1, 0.0, 0.0))
    assert compile_memory.busy() is None  # this run's own two threads
    monkeypatch.setattr(compile_memory.os, "getloadavg", lambda: (3.9, 0.0, 0.0))
    assert compile_memory.busy() == "load average 3.9 on 2 CPUs"  # another training beside it


def test_slow_first_eager_steps_do_not_credit_compiling_with_a_gain():
    """Eager 30 ms at first (a new process), compiled 25 ms, eager 20 ms when timed again: off."""
    auto = AutoCompile(0)
    assert auto.decide(13, 0.030, CPU_BF16, 3600.0).action == "compile"
    assert auto.decide(26, 0.025, CPU_BF16, 3600.0).action == "eager"
    verdict = auto.decide(39, 0.020, CPU_BF16, 3600.0)
    assert (verdict.action, auto.outcome) == ("", "off")
    assert verdict.line == "compile auto: off again: compiled steps 25.0 ms, eager 20.0 ms (0.80x)"
    auto = AutoCompile(0)  # and where it does pay, the step is compiled again for the rest of the run
    auto.decide(13, 0.030, CPU_BF16, 3600.0), auto.decide(26, 0.015, CPU_BF16, 3600.0)
    assert (auto.decide(39, 0.020, CPU_BF16, 3600.0).action, auto.outcome) == ("compile", "on")
