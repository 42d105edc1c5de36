"""A 2-process gloo run on CPU stops like a single process: with its launcher, on SIGTERM, on a stopped peer."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_train_args
from resnet.train.metrics import read_metrics

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the processes")

# Long enough never to finish during a test; a metrics record every step shows when training runs.
LONG = {"iterations": 100000, "log_every": 1, "eval_every": 100000}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _wait_for(condition, limit_s: float) -> bool:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _start(run_dir: Path, stderr: Path, *extra: str) -> tuple[subprocess.Popen, list[int]]:
    """The launcher, once both processes train (a record in metrics.jsonl), and their pids."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", "resnet", *tiny_train_args(run_dir, **LONG), "--nproc", "2", *extra],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("w"),
    )
    started = _wait_for(
        lambda: (
            (run_dir / "metrics.jsonl").is_file()
            and read_metrics(run_dir / "metrics.jsonl")
            or launcher.poll() is not None
        ),
        180,
    )
    assert started and launcher.poll() is None, stderr.read_text()[-3000:]
    ranks = [p for p in _children(launcher.pid) if _alive(p)]
    assert len(ranks) == 2, ranks
    return launcher, ranks


def _cleanup(launcher: subprocess.Popen, ranks: list[int]) -> None:
    for pid in [launcher.pid, *ranks]:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    launcher.wait(30)


def test_processes_die_with_a_killed_launcher(tmp_path):
    launcher, ranks = _start(tmp_path / "run", tmp_path / "stderr.txt")
    try:
        launcher.kill()  # SIGKILL: no chance to stop its children
        launcher.wait(30)
        assert _wait_for(lambda: not any(_alive(p) for p in ranks), 10), "training processes outlived the launcher"
    finally:
        _cleanup(launcher, ranks)


def test_sigterm_saves_and_prints_one_resume_hint_with_nproc(tmp_path):
    run_dir, err = tmp_path / "run", tmp_path / "stderr.txt"
    launcher, ranks = _start(run_dir, err)
    try:
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(120) == 130
        text = err.read_text()
        assert "Traceback" not in text, text[-3000:]
        hints = [line for line in text.splitlines() if "Resume with:" in line]
        assert hints == [
            f"resnet: stopped at step {hints[0].split('step ')[1].split('/')[0]}/100000; checkpoint "
            f"saved. Resume with: resnet train --resume {run_dir} --nproc 2"
        ], text[-3000:]
        assert (run_dir / "last.safetensors").is_file()
        assert not any(_alive(p) for p in ranks)
    finally:
        _cleanup(launcher, ranks)


def test_a_stopped_process_ends_the_run_after_dist_timeout(tmp_path):
    err = tmp_path / "stderr.txt"
    launcher, ranks = _start(tmp_path / "run", err, "--dist-timeout", "3")
    stopped, other = ranks[1], ranks[0]
    try:
        os.kill(stopped, signal.SIGSTOP)
        assert _wait_for(lambda: not _alive(other), 60), "the other process still waits"
        with contextlib.suppress(ProcessLookupError):  # the launcher may have ended it already
            os.kill(stopped, signal.SIGKILL)  # torchrun would do this after its 30 s grace
        assert launcher.wait(60) == 2
        text = err.read_text()
        lines = [line for line in text.splitlines() if "--dist-timeout 3 s" in line]
        assert len(lines) == 1 and lines[0].startswith("resnet: error: process "), text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    finally:
        _cleanup(launcher, ranks)


def _one_line(text: str) -> str:
    """The one line the run printed for the user ("resnet: ..."), with no traceback or C++ noise."""
    assert "Traceback" not in text and "terminate called" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("resnet:")]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def _signal_one(tmp_path: Path, signum: int, rank: int, status: int, *extra: str) -> tuple[str, Path, float]:
    """Send ``signum`` to one training process of a run: the run's one line, its folder, and the seconds
    until the launcher exited (with ``status``, every process gone)."""
    run_dir, err = tmp_path / "run", tmp_path / "stderr.txt"
    launcher, ranks = _start(run_dir, err, *extra)
    try:
        os.kill(ranks[rank], signum)
        sent = time.monotonic()
        assert launcher.wait(120) == status, err.read_text()[-3000:]
        took = time.monotonic() - sent
        assert not any(_alive(p) for p in ranks)
        return _one_line(err.read_text()), run_dir, took
    finally:
        _cleanup(launcher, ranks)


@pytest.mark.parametrize("rank", [0, 1])
def test_a_killed_process_is_one_line_naming_it(tmp_path, rank):
    line, _, _ = _signal_one(tmp_path, signal.SIGKILL, rank, 2)
    assert line.startswith(f"resnet: error: training process {rank} of 2 was killed by SIGKILL; the run is stopped")


def test_sigterm_to_one_process_stops_the_run_with_one_line_naming_it(tmp_path):
    line, run_dir, _ = _signal_one(tmp_path, signal.SIGTERM, 1, 130)
    step = line.split("step ")[1].split("/")[0]
    assert line == (
        f"resnet: stopped at step {step}/100000 (SIGTERM to process 1 of 2); checkpoint saved. "
        f"Resume with: resnet train --resume {run_dir} --nproc 2"
    )
    assert (run_dir / "last.safetensors").is_file()


def test_a_stopped_process_ends_the_run_with_one_line_soon_after_dist_timeout(tmp_path):
    # Nobody but the launcher continues or kills the stopped process.
    line, _, took = _signal_one(tmp_path, signal.SIGSTOP, 1, 2, "--dist-timeout", "3")
    assert line.startswith(
        "resnet: error: process 0 of 2: no answer from the other processes within --dist-timeout 3 s"
    )
    assert took < 3 + 15  # the timeout and a few seconds to end the processes, not torchrun's 30 s grace


# -- die_with_parent on its own: a parent that starts a child and is killed ---------------------------

_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(child.pid, flush=True)
time.sleep(600)
"""
_CHILD = """
import os, time
from resnet.train.distributed import die_with_parent
die_with_parent(os.getppid(), use_prctl={use_prctl}, interval_s=0.1)
print("armed", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("use_prctl", [True, False], ids=["prctl", "watchdog"])
def test_die_with_parent(use_prctl):
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _CHILD.format(use_prctl=use_prctl)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    try:
        assert parent.stdout.readline() == "armed\n"  # the child shares the parent's stdout
        assert _alive(child)
        parent.kill()
        parent.wait(30)
        assert _wait_for(lambda: not _alive(child), 15), "the child outlived its parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_parent_gone_before_the_watch_is_armed_ends_the_process_at_once():
    code = (
        "import os\nfrom resnet.train.distributed import die_with_parent\ndie_with_parent(os.getppid() + 1)\n"
        "print('survived')"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL and "survived" not in done.stdout


def test_dist_timeout_is_a_positive_option():
    from resnet.errors import ResNetError
    from resnet.train import resolve

    assert resolve({}).dist_timeout == 300 and resolve({"dist_timeout": 2.5}).dist_timeout == 2.5
    with pytest.raises(ResNetError, match="dist.timeout.*positive"):
        resolve({"dist_timeout": 0})


def _failure(rank: int, exitcode: int, peer: str | None = None, note: str = "") -> object:
    from resnet.train.distributed import Failure

    if peer is None:
        return Failure(rank, exitcode, {})
    line = f"process {rank} of 2: {peer or 'own error'}; stopped; {note}"
    return Failure(rank, exitcode, {"resnet": {"line": line, "peer": peer, "note": note}})


def test_root_cause_names_the_cause_not_its_effects():
    from resnet.train.distributed import root_cause

    note = "the last good checkpoint is r/last.safetensors (step 40)"
    # rank 1 killed; rank 0 lost its connection and was then ended by the launcher
    killed = [_failure(1, -9), _failure(0, -15, "lost", note)]
    assert root_cause(killed, 2, frozenset({0})) == (
        f"training process 1 of 2 was killed by SIGKILL; the run is stopped; {note}"
    )
    # rank 1 stopped: rank 0 waited --dist-timeout in vain; the launcher then killed rank 1
    stopped = [_failure(0, 2, "timeout", note), _failure(1, -9)]
    assert root_cause(stopped, 2, frozenset({1})).startswith("process 0 of 2: timeout")
    assert root_cause(stopped, 2).startswith("process 0 of 2: timeout")  # killed by someone else, later
    # a process's own error beats the others' reactions to it
    own = [_failure(1, 2, "lost"), _failure(0, 2, "")]
    assert root_cause(own, 2).startswith("process 0 of 2: own error")
    crashed = [_failure(1, 1), _failure(0, 2, "lost")]
    assert root_cause(crashed, 2) == (
        "training process 1 of 2 exited with status 1 (see its messages above); the run is stopped"
    )
