"""torchrun's own elastic machinery on CPU with gloo: a restarted worker group resumes from the last
checkpoint, and two agents meeting through c10d rendezvous train like ``resnet train --nproc 2``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_train_args
from resnet.checkpoints import load_checkpoint
from test_train_ddp_signals import _alive, _children, _wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the processes")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
# 60 steps, a checkpoint every 10: a process killed after the first checkpoint leaves most of the run.
OPTS = {"iterations": 60, "checkpoint_every": 10, "log_every": 5, "eval_every": 60}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.safetensors").model


def _assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The final weights of the run under ``resnet train --nproc 2``, nothing interrupted."""
    run_dir = tmp_path_factory.mktemp("nproc") / "run"
    done = subprocess.run(
        [sys.executable, "-m", "resnet", *tiny_train_args(run_dir, **OPTS), "--nproc", "2"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _weights(run_dir)


def test_a_restarted_worker_group_resumes_from_the_last_checkpoint(tmp_path, uninterrupted):
    run_dir, err = tmp_path / "run", tmp_path / "stderr.txt"
    agent = subprocess.Popen(
        [
            *TORCHRUN,
            "--nproc-per-node",
            "2",
            "--max-restarts",
            "1",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_port()),
            "-m",
            "resnet",
            *tiny_train_args(run_dir, **OPTS),
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=err.open("w"),
    )
    try:
        # Kill one process once the run has saved its first checkpoint (step 10 of 60).
        saved = _wait_for(lambda: (run_dir / "last.safetensors").is_file() or agent.poll() is not None, 180)
        assert saved and agent.poll() is None, err.read_text()[-3000:]
        ranks = [p for p in _children(agent.pid) if _alive(p)]
        assert len(ranks) == 2, ranks
        os.kill(ranks[1], signal.SIGKILL)
        assert agent.wait(240) == 0, err.read_text()[-3000:]
    finally:
        if agent.poll() is None:
            for pid in _children(agent.pid):
                os.kill(pid, signal.SIGKILL)
            agent.kill()
            agent.wait(30)
    text = err.read_text()
    resumed = [line for line in text.splitlines() if line.startswith("torchrun restart 1: resuming the run in")]
    assert len(resumed) == 1, text[-3000:]
    assert f"in {run_dir} from its last checkpoint (step " in resumed[0]
    assert int(resumed[0].split("(step ")[1].rstrip(")")) >= 10
    assert "already holds a run" not in text
    _assert_bit_identical(_weights(run_dir), uninterrupted)


def test_two_torchrun_agents_with_c10d_rendezvous_train_like_nproc_2(tmp_path, uninterrupted):
    run_dir, endpoint = tmp_path / "run", f"127.0.0.1:{_port()}"
    agents = [
        subprocess.Popen(
            [
                *TORCHRUN,
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                endpoint,
                "--rdzv-id",
                "test-two-agents",
                "-m",
                "resnet",
                *tiny_train_args(run_dir, **OPTS),
            ],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"stderr{i}.txt").open("w"),
        )
        for i in range(2)
    ]
    try:
        codes = [a.wait(240) for a in agents]
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
                a.wait(30)
    # A string, not a list: pytest shows it whole.
    assert codes == [0, 0], "\n\n".join((tmp_path / f"stderr{i}.txt").read_text()[-4000:] for i in range(2))
    _assert_bit_identical(_weights(run_dir), uninterrupted)


# -- what a restarted worker group does with its run folder, in one process ------------------------


class _Crash(RuntimeError):
    pass


def _tiny(run_dir: Path, **changes: object):
    from conftest import TINY_TRAIN
    from resnet.train import resolve

    return resolve({**TINY_TRAIN, "checkpoint_every": 20, "run_dir": str(run_dir), **changes})


def _crash_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The first attempt dies after ``step`` steps, as a process killed there would."""
    from resnet.train.trainer import Trainer

    real = Trainer._train_step

    def step_or_crash(self, batches):
        if self.step == step:
            raise _Crash(f"killed at step {step}")
        real(self, batches)

    monkeypatch.setattr(Trainer, "_train_step", step_or_crash)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    from resnet.train import train

    run_dir = tmp_path_factory.mktemp("whole") / "run"
    train(_tiny(run_dir))
    return _weights(run_dir)


@pytest.mark.parametrize(
    ("crash_step", "said"),
    [
        (25, "torchrun restart 1: resuming the run in {run} from its last checkpoint (step 20)"),
        (5, "torchrun restart 1: {run} holds no checkpoint of this run yet; starting it again"),
    ],
    ids=["after-a-checkpoint", "before-any-checkpoint"],
)
def test_a_restart_takes_up_its_run(tmp_path, monkeypatch, caplog, whole_run, crash_step, said):
    import logging

    from resnet.train import train

    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _crash_at(m, crash_step)
        with pytest.raises(_Crash):
            train(_tiny(run_dir))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    with caplog.at_level(logging.INFO, logger="resnet.train.trainer"):
        result = train(_tiny(run_dir))
    assert said.format(run=run_dir) in caplog.messages
    assert result.summary["iterations"] == 40
    _assert_bit_identical(_weights(run_dir), whole_run)


def test_a_restart_refuses_a_folder_holding_another_run(tmp_path, monkeypatch, trained_run):
    from resnet.errors import ResNetError
    from resnet.train import train

    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    before = sorted(p.name for p in trained_run.iterdir())
    with pytest.raises(ResNetError, match="already holds a run"):
        train(_tiny(trained_run, lr=0.05))  # not the config that run was started with
    assert sorted(p.name for p in trained_run.iterdir()) == before
