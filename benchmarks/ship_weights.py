"""Ship a finished CIFAR-10 run as a named network of the package: its weights file and its model card.

    python benchmarks/ship_weights.py --run /tmp/runs/r20-s0 --name resnet20.cifar10 \
        --command "resnet train --recipe cifar-fast ... --seed 0" --commit 1a2b3c4

Writes ``src/resnet/weights/trained/<name>.safetensors`` (the run's final weights with its classes,
normalisation and input size: a checkpoint of this project without training state) and
``<name>.md`` (the model card: command, commit, seed, data, validation errors with and without the
mirror-image test, time, machine), then prints the row to add to ``SHIPPED`` in
``src/resnet/weights/shipped.py``, with the file's full SHA-256. Pin the digest of the file as written
and commit that file: safetensors orders its header anew in each process, so shipping the same run
twice gives the same tensors and metadata in other bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resnet.checkpoints import LAST, load_checkpoint, save_checkpoint  # noqa: E402
from resnet.train.metrics import read_metrics  # noqa: E402
from resnet.weights.shipped import TRAINED  # noqa: E402


def cpu_name() -> str:
    """The CPU as lscpu names it, with its vector units (what decides the training speed)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    units = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    cores = text.count("processor\t:")

    def field(name: str) -> str:
        return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name)), "?")

    kind = f"CPU family {field('cpu family')}, model {field('model' + chr(9))}"
    return f"{model or 'unknown CPU'} ({kind}), {cores} cores, {' '.join(units) or 'no AVX2'}"


def card(name: str, run: Path, command: str, commit: str, meta: dict, summary: dict, single: float) -> str:
    config = json.loads((run / "config.json").read_text())
    final = summary["final"]
    norm = meta["normalization"]
    mean = ", ".join(f"{v:.2f}" for v in norm.get("mean", []))
    std = ", ".join(f"{v:.2f}" for v in norm.get("std", []))
    plan = config["resolved"].get("time_plan")
    limit = f" (`--time-limit` {plan['limit_s'] / 60:.0f} min)" if plan else ""
    model, split = meta["model"], config["split_seed"]
    rows = [
        ("command", f"`{command}`"),
        ("commit", f"`{commit}`"),
        ("seed", f"{config['seed']} (split seed {split})"),
        (
            "data",
            "the 50,000 CIFAR-10 training images re-encoded as JPEG (`cifar10-train-jpg.tar.gz`): 45,000 "
            f"trained on, 5,000 held out for validation (split seed {split}); the CIFAR-10 test set was not used",
        ),
        (
            "recipe",
            f"`{config['recipe']}`: {summary['iterations']} iterations of batch {config['batch_size']} "
            f"({summary['epochs']:.1f} epochs){limit}, {config['schedule']} LR schedule from {config['lr']:g}, "
            f"label smoothing {config['label_smoothing']:g}, weight decay {config['weight_decay']:g}, "
            f"precision {config['resolved']['precision']}",
        ),
        (
            "validation error, each image and its mirror image (`flip`)",
            f"**{100 * final['top1_error']:.2f}%** ({final['images']:,} images)",
        ),
        ("validation error, single view", f"{100 * single:.2f}%"),
        (
            "time",
            f"{summary['session_s'] / 60:.1f} min from command to prompt "
            f"({summary['images_per_s']:.0f} training images/s)",
        ),
        ("machine", f"{cpu_name()}; torch {_torch_version()}"),
        ("input", f"32x32 RGB, normalised per channel: mean ({mean}), std ({std}) on the 0..255 scale"),
        ("classes", ", ".join(meta["classes"])),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    return f"""# {name}

The paper's {model} ({summary["params"]:,} parameters, option {config["resolved"]["shortcut"]} shortcuts),
trained by this project's own command on CIFAR-10 JPEG images.

| | |
| --- | --- |
{table}

Use it wherever a run or checkpoint is accepted:

```bash
resnet eval {name} --data-dir cifar10-jpg/train --split val  # its 5,000 validation images again
resnet eval {name} --data-dir my_test_images/ --split all    # every image of a folder of class folders
resnet predict {name} image.png
resnet export {name} --format onnx                           # ./{name}.onnx
resnet train --recipe finetune --init {name} --data-dir my_small_images
```

```python
import resnet
net = resnet.create_model("{model}", weights="cifar10")
```

**JPEG, not the original pixels.** Every image this network was trained and validated on went
through a JPEG round trip: baseline JPEG at quality 75 (the standard tables at half scale) with 4:2:0
chroma subsampling, so each 32x32 image keeps its colour at 16x16 only (read from the files' headers
with Pillow). JPEG shifts CIFAR-10's distribution a lot: a published ResNet-20 trained
on the original pixels scores about 91.5% on the original test images but about 81% on the same
images after the round trip (the data's README). This network is the reverse case, and how it scores
on the original PNG pixels is **not measured** (no sample of the original-format data was available
where it was trained). For the original CIFAR-10 pixels, expect a shift of unknown size, and train on
them (`resnet train --recipe cifar-fast --data cifar10 --data-dir ...`) where that matters.
"""


def _torch_version() -> str:
    import torch

    return torch.__version__


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a finished run folder")
    p.add_argument("--name", required=True, help="MODEL.TAG, e.g. resnet20.cifar10")
    p.add_argument("--command", required=True, help="the exact command that trained the run")
    p.add_argument("--commit", required=True, help="the commit the run was trained at")
    args = p.parse_args()
    summary = json.loads((args.run / "summary.json").read_text())
    last = load_checkpoint(args.run / LAST)
    if args.name.split(".")[0] != last.meta["model"]:
        sys.exit(f"{args.name}: the run trained {last.meta['model']}")
    vals = [r for r in read_metrics(args.run / "metrics.jsonl") if r["kind"] == "val"]
    if not vals or vals[-1]["step"] != summary["iterations"]:
        sys.exit(f"{args.run}: no validation at the last step")
    meta = {k: v for k, v in last.meta.items() if k not in ("step", "epoch")}
    # The data's name and split, not the folder it was on here (users pass their own --data-dir).
    meta["data"] = {**meta["data"], "data_dir": None, "cache_dir": None}
    TRAINED.mkdir(parents=True, exist_ok=True)
    weights = TRAINED / f"{args.name}.safetensors"
    save_checkpoint(weights, {**meta, "weights": args.name}, last.model)
    text = card(args.name, args.run, args.command, args.commit, last.meta, summary, vals[-1]["val_error"])
    (TRAINED / f"{args.name}.md").write_text(text)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    model, tag = args.name.split(".", 1)
    print(
        f'    ShippedWeights("{model}", "{tag}", "{digest}", '
        f"{100 * summary['final']['top1_error']:.2f}, {100 * vals[-1]['val_error']:.2f}, _CIFAR_JPEG),"
    )


if __name__ == "__main__":
    main()
