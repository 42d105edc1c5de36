"""Where a real training run's step time goes, against the bench's step, in one process.

``resnet bench`` times the trainer's step (:func:`resnet.train.step.train_step`) on one fixed synthetic
batch. A run's logged images/s also pays for what surrounds the step: the batch's gather and CIFAR
augmentation, the LR set, the metrics window (``_record``), the loop's bookkeeping. This script builds
a real :class:`~resnet.train.trainer.Trainer` for the recipe on the data given and, in interleaved
rounds so that both see the same machine load:

- ``loop``: the trainer's own loop steps, each timed as the run times it (``tick`` to ``_count_time``),
  with the parts inside it timed too: the next batch, ``train_step``, ``_record``;
- ``bench``: ``train_step`` with the same network, optimizer, loss and speed options on one fixed batch
  (the first real one), as ``resnet bench`` does;
- ``bench, fresh batch``: the same with a new batch each step, the batches made up front (so the
  difference to ``bench`` is what a new input costs the step itself: caches, not the augmentation);
- ``bench, synthetic batch``: the run's network on a ``randn`` batch, and ``bench, new network,
  synthetic batch``: a newly built network and optimizer on it, which is what ``resnet bench`` times.

    python benchmarks/profile_run.py --data-dir cifar10-jpg/train                   # resnet20, cifar-fast
    python benchmarks/profile_run.py --data-dir cifar10-jpg/train --model resnet56 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from resnet import create_model  # noqa: E402
from resnet.train import trainer as trainer_mod  # noqa: E402
from resnet.train.build import make_optimizer  # noqa: E402
from resnet.train.config import resolve  # noqa: E402
from resnet.train.step import train_step  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="CIFAR-10 image folder (e.g. cifar10-jpg/train)")
    p.add_argument("--recipe", default="cifar-fast")
    p.add_argument("--model", default="resnet20", help="a CIFAR network (default: resnet20)")
    p.add_argument("--steps", type=int, default=60, help="steps of each kind a round (default: 60)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median counts (default: 5)")
    return p


class _Timed:
    """Wraps a callable and adds its wall time to ``totals[name]``."""

    def __init__(self, fn: Any, name: str, totals: dict[str, float]):
        self.fn, self.name, self.totals = fn, name, totals

    def __call__(self, *args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.fn(*args, **kw)
        finally:
            self.totals[self.name] += time.perf_counter() - t


def main() -> None:
    args = _parser().parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = resolve(
            {
                "recipe": args.recipe,
                "data": "imagefolder",
                "data_dir": args.data_dir,
                "model": args.model,
                "iterations": 10**6,
                "eval_every": 10**6,
                "checkpoint_every": 10**6,
                "log_every": 10**6,
                "quiet": True,
                "compile": "off",
                "run_dir": str(Path(tmp) / "run"),
            }
        )
        t = trainer_mod.Trainer(cfg, cfg.run_dir)
        r = t.run
        batch = r.batches.micro
        print(f"{args.recipe}, {args.model}, batch {batch}: {t.speed.describe()}", flush=True)

        parts: dict[str, float] = defaultdict(float)
        trainer_mod.train_step = _Timed(train_step, "train_step", parts)  # type: ignore[assignment]
        t._record = _Timed(t._record, "_record", parts)  # type: ignore[method-assign]
        batches = t._batches()
        fixed = next(batches)
        fresh = [next(batches) for _ in range(args.steps)]

        def loop() -> float:
            total = 0.0
            for _ in range(args.steps):
                tick = time.perf_counter()  # as Trainer._fit times a step
                got = _Timed(next, "next batch", parts)(batches)
                t._train_step(got)
                total += time.perf_counter() - tick
                t.run_time.add_step(0.0)  # keeps the trainer's counters moving without its timing decisions
            return total / args.steps

        def bench(inputs: list[list[Any]], forward: Any = r.forward, optimizer: Any = r.optimizer) -> float:
            tick = time.perf_counter()
            for b in inputs:
                train_step(forward, b, optimizer=optimizer, criterion=r.criterion, speed=t.speed, scaler=r.scaler)
            return (time.perf_counter() - tick) / len(inputs)

        x, y = fixed[0]
        synthetic = [(torch.randn(x.shape).contiguous(memory_format=torch.channels_last), y)]
        new_net = create_model(args.model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        new_opt = make_optimizer(new_net, cfg)

        loop()  # warm-up: allocator and oneDNN caches
        rows: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.rounds):
            parts.clear()
            rows["run loop"].append(loop())
            for name in ("next batch", "train_step", "_record"):
                rows[f"  of which {name}"].append(parts[name] / args.steps)
            rows["bench (one fixed batch)"].append(bench([fixed] * args.steps))
            rows["bench, fresh batch each step"].append(bench(fresh))
            rows["bench, synthetic batch"].append(bench([synthetic] * args.steps))
            rows["bench, new network, synthetic"].append(bench([synthetic] * args.steps, new_net, new_opt))
        base = statistics.median(rows["bench (one fixed batch)"])
        print(f"{'':32} {'ms/step':>8} {'img/s':>7} {'x bench':>8}")
        for name, values in rows.items():
            ms = statistics.median(values) * 1e3
            rate = f"{batch / ms * 1e3:7.0f}" if not name.startswith("  ") else " " * 7
            print(f"{name:32} {ms:8.2f} {rate} {ms / base / 1e3:8.3f}")


if __name__ == "__main__":
    main()
