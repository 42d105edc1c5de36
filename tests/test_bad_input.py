"""Bad options, crafted checkpoints, damaged resume state and odd data: one line on stderr, exit 2.

One table: each case runs ``resnet`` in its own process (with a timeout, so a hang is a failure,
not a stuck suite) and must exit with status 2, print exactly one stderr line (no traceback, no
usage dump) and name the option or file at fault. Cases run a few at a time in parallel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import TINY_TRAIN, make_cifar, py2_pickle

SRC = str(Path(__file__).resolve().parents[1] / "src")
TIMEOUT_S = 30  # generous for a loaded machine; a case normally takes well under a second
PARALLEL = 4

# One Python process imports resnet (and torch) once, then forks a child per case: each case is its
# own process with its own stderr and exit status, without paying torch's import 30 times.
RUNNER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
cases, out_dir, timeout, parallel = json.loads(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
import resnet.cli, resnet.evaluate, resnet.export, resnet.predict, resnet.train.trainer  # preload, no ops run
results, running, queue = {}, {}, list(enumerate(cases))
while queue or running:
    while queue and len(running) < parallel:
        i, argv = queue.pop(0)
        pid = os.fork()
        if pid == 0:
            err = os.open(os.path.join(out_dir, f"{i}.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(err, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            try:
                code = resnet.cli.main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback; traceback.print_exc(); code = 1
            sys.stderr.flush()
            os._exit(code)
        running[pid] = (i, time.monotonic())
    time.sleep(0.02)
    for pid, (i, started) in list(running.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            results[i] = os.waitstatus_to_exitcode(status)
            del running[pid]
        elif time.monotonic() - started > timeout:
            os.kill(pid, 9); os.waitpid(pid, 0)
            results[i] = "timeout"
            del running[pid]
print(json.dumps([results[i] for i in range(len(cases))]))
"""


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def _crafted(
    source: Path,
    target: Path,
    *,
    header: dict[str, str | None] | None = None,
    meta: dict | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> str:
    """A copy of checkpoint ``source`` with header fields replaced (None drops one) or meta fields changed."""
    head, weights = _read(source)
    if meta is not None:
        head["meta"] = json.dumps({**json.loads(head["meta"]), **meta})
    for key, value in (header or {}).items():
        if value is None:
            head.pop(key, None)
        else:
            head[key] = value
    save_file(tensors if tensors is not None else weights, str(target), metadata=head)
    return str(target)


def _resume_copy(run: Path, target: Path, change) -> str:
    """A copy of run folder ``run``, as if killed before it finished (no summary: a finished run is
    left alone by --resume), whose last checkpoint's training state went through ``change``."""
    shutil.copytree(run, target)
    (target / "summary.json").unlink()
    last = target / "last.safetensors"
    head, weights = _read(last)
    state = json.loads(head["state"])
    state, weights = change(state, weights)
    head["state"] = json.dumps(state)
    save_file(weights, str(last), metadata=head)
    return str(target)


def _drop_first_state_tensor(state, weights):
    key = next(k for k in weights if k.startswith("state."))
    return state, {k: v for k, v in weights.items() if k != key}


def _set(path: str, value):
    def change(state, weights):
        node = state
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
        return state, weights

    return change


def _cases(run: Path, tmp: Path) -> list[tuple[str, list[str], list[str]]]:
    """(name, argv, words stderr must contain)."""
    best = run / "best.safetensors"
    ck = str(best)
    image = tmp / "img.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    deep = "[" * 100_000 + "]" * 100_000
    head, weights = _read(best)
    nan_weights = {
        k: (torch.full_like(v, float("nan")) if k.endswith("conv1.weight") else v) for k, v in weights.items()
    }

    archive = tmp / "images.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really")
    one_class = tmp / "one-class"
    (one_class / "cat").mkdir(parents=True)
    for i in range(4):  # larger than the small-image cache's 64 px: no cache is built (nor logged)
        Image.fromarray(np.full((80, 80, 3), i * 40, np.uint8)).save(one_class / "cat" / f"{i}.png")
    cifar = make_cifar(tmp / "cifar-float")
    batch = {
        b"labels": np.arange(20, dtype=np.float64) % 10,
        b"data": np.zeros((20, 3072), np.uint8),
        b"batch_label": b"x",
    }
    (cifar / "data_batch_1").write_bytes(py2_pickle(batch))
    toml = tmp / "seed.toml"
    toml.write_text("seed = 1e20\n")

    def rd(name: str) -> list[str]:  # one run folder per case: cases run side by side, each folder is locked
        return ["--run-dir", str(tmp / f"never-{name}"), "--iterations", "1", "--cache-dir", str(tmp / "cache")]

    return [
        # options, every subcommand's parser
        ("invalid choice", ["train", "--data", "cifar-10"], ["--data", "did you mean cifar10"]),
        ("invalid format", ["export", ck, "--format", "onxx"], ["--format", "did you mean onnx"]),
        ("misspelt option", ["train", "--modle", "resnet20"], ["--modle", "did you mean --model"]),
        ("misspelt subcommand option", ["analyze", "gradients", "resnet20", "--stepz", "3"], ["did you mean --steps"]),
        ("eval batch 0", ["eval", ck, "--batch-size", "0"], ["--batch-size"]),
        ("export size 0", ["export", ck, "--format", "torchscript", "--input-size", "0"], ["--input-size"]),
        ("predict top 0", ["predict", ck, str(image), "--top", "0"], ["--top"]),
        ("summary depth", ["summary", "cifar_resnet", "--depth", "600002"], ["--depth"]),
        ("epochs nan", ["train", "--epochs", "nan"], ["epochs"]),
        ("epochs inf", ["train", "--epochs", "inf"], ["epochs"]),
        ("val-split nan", ["train", "--val-split", "nan"], ["val-split"]),
        ("val-split 1.0", ["train", "--val-split", "1.0"], ["val-split", "ambiguous"]),
        ("seed -1", ["train", "--seed", "-1"], ["seed"]),
        ("seed 1e20 in a file", ["train", "--config", str(toml)], ["seed"]),
        ("warm-until-error nan", ["train", "--warm-until-error", "nan"], ["warm-until-error"]),
        # crafted checkpoints: checked before any network is built
        ("no meta", ["eval", _crafted(best, tmp / "a.safetensors", header={"meta": None})], ["a.safetensors", "meta"]),
        ("meta not JSON", ["eval", _crafted(best, tmp / "b.safetensors", header={"meta": "{oops"})], ["b.safetensors"]),
        ("meta a list", ["eval", _crafted(best, tmp / "c.safetensors", header={"meta": "[1, 2]"})], ["c.safetensors"]),
        ("meta 100k deep", ["eval", _crafted(best, tmp / "d.safetensors", header={"meta": deep})], ["d.safetensors"]),
        (
            "1e10 classes",
            [
                "predict",
                _crafted(
                    best,
                    tmp / "e.safetensors",
                    meta={"model_options": {"num_classes": 10**10, "in_channels": 1, "depth": 8}},
                ),
                str(image),
            ],
            ["e.safetensors", "num_classes"],
        ),
        (
            "depth 600002",
            [
                "eval",
                _crafted(
                    best,
                    tmp / "f.safetensors",
                    meta={"model_options": {"num_classes": 10, "in_channels": 1, "depth": 600002}},
                ),
            ],
            ["f.safetensors", "depth"],
        ),
        (
            "image 60000x60000",
            [
                "export",
                _crafted(best, tmp / "g.safetensors", meta={"image_size": [60000, 60000]}),
                "--format",
                "torchscript",
            ],
            ["g.safetensors", "image_size"],
        ),
        ("NaN weights", ["eval", _crafted(best, tmp / "h.safetensors", tensors=nan_weights)], ["h.safetensors", "NaN"]),
        # damaged resume state
        ("missing tensor", ["train", "--resume", _resume_copy(run, tmp / "r1", _drop_first_state_tensor)], ["r1"]),
        ("garbage rng", ["train", "--resume", _resume_copy(run, tmp / "r2", _set("rng.torch", [1, 2, 3]))], ["r2"]),
        ("step a string", ["train", "--resume", _resume_copy(run, tmp / "r3", _set("step", "2"))], ["r3", "step"]),
        ("step negative", ["train", "--resume", _resume_copy(run, tmp / "r4", _set("step", -5))], ["r4", "step"]),
        ("step beyond", ["train", "--resume", _resume_copy(run, tmp / "r5", _set("step", 10**6))], ["r5", "step"]),
        # data
        (
            "archive as data-dir",
            ["train", "--data", "imagefolder", "--data-dir", str(archive), *rd("archive")],
            ["images.tar.gz", "archive", "tar"],
        ),
        (
            "one class",
            ["train", "--data", "imagefolder", "--data-dir", str(one_class), "--val-split", "1", *rd("one-class")],
            ["one-class", "2 class"],
        ),
        (
            "float CIFAR labels",
            ["train", "--data", "cifar10", "--data-dir", str(cifar), *rd("cifar")],
            ["data_batch_1", "integer"],
        ),
    ]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step run (ResNet-8 on digits): best and last checkpoints, resume state."""
    from resnet.train import resolve, train

    run_dir = tmp_path_factory.mktemp("short") / "run"
    train(resolve({**TINY_TRAIN, "iterations": 2, "eval_every": 2, "log_every": 1, "run_dir": str(run_dir)}))
    return run_dir


def test_bad_input_gives_one_line_and_exit_2(short_run, tmp_path):
    cases = _cases(short_run, tmp_path)
    out = tmp_path / "stderr"
    out.mkdir()
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            SRC,
            json.dumps([argv for _, argv, _ in cases]),
            str(out),
            str(TIMEOUT_S),
            str(PARALLEL),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=TIMEOUT_S * len(cases),
    )
    assert p.returncode == 0, p.stderr
    codes = json.loads(p.stdout.splitlines()[-1])
    problems = []
    for i, ((name, _, words), code) in enumerate(zip(cases, codes)):
        err = (out / f"{i}.err").read_text()
        if code != 2 or len(err.splitlines()) != 1 or not all(w in err for w in words):
            problems.append(f"{name}: exit {code}, stderr {err[-400:]!r}")
    assert not problems, "\n".join(problems)
