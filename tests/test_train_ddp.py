"""DDP on CPU with gloo: 2 processes x batch B with synchronised BN == 1 process x batch 2B."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from conftest import tiny_train_args
from resnet.checkpoints import load_checkpoint
from resnet.cli import main
from resnet.train.metrics import read_metrics

# No augmentation, so both runs see exactly the same global batches in the same order.
OPTS = {"iterations": 4, "batch_size": 32, "augment": "none", "log_every": 2, "eval_every": 4}


# Every process of the command says whether it went through the interpreter's teardown (atexit).
SITECUSTOMIZE = """
import atexit, os, pathlib
atexit.register(lambda: pathlib.Path(os.environ["ENDS"], os.environ.get("RANK", "launcher")).touch())
"""


def test_two_processes_equal_one_with_the_global_batch(tmp_path):
    ddp, single, site, ends = tmp_path / "ddp", tmp_path / "single", tmp_path / "site", tmp_path / "ends"
    site.mkdir(), ends.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(site), *sys.path])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "ENDS": str(ends)}
    done = subprocess.run(
        [sys.executable, "-m", "resnet", *tiny_train_args(ddp, **OPTS, sync_bn=True), "--nproc", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "global batch 32 = 2 process(es) x 16" in done.stderr
    assert done.stdout.count("run folder:") == 1  # rank 0 alone reports, logs and saves
    assert "Warning" not in done.stderr  # e.g. no deprecated collective in the synchronised BN
    # The training processes end without the teardown in which gloo can abort a finished process;
    # the launcher ends as any command does.
    assert sorted(p.name for p in ends.iterdir()) == ["launcher"]
    assert "error" not in done.stderr.lower()
    assert main(tiny_train_args(single, **OPTS)) == 0

    a, b = load_checkpoint(ddp / "last.safetensors"), load_checkpoint(single / "last.safetensors")
    assert a.model.keys() == b.model.keys()
    for k in a.model:
        assert torch.allclose(a.model[k].double(), b.model[k].double(), atol=1e-5, rtol=1e-4), k
    # The logged training loss is the global one, the same in both runs.
    la = [r["loss"] for r in read_metrics(ddp / "metrics.jsonl") if r["kind"] == "train"]
    lb = [r["loss"] for r in read_metrics(single / "metrics.jsonl") if r["kind"] == "train"]
    assert torch.allclose(torch.tensor(la), torch.tensor(lb), atol=1e-5)
