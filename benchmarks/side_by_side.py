"""Training runs one at a time with every thread, or side by side with a share each (``--jobs``).

The degradation experiment trains several networks. On a CPU with few cores, small convolutions do
not split well over threads, so two one-thread processes can do more work than one two-thread
process. This script measures that for the networks of ``resnet experiment degradation --quick``:
each network trains ``--steps`` steps (the project's model, foreach SGD, cross-entropy, fp32
channels-last, batch 128), first one network after the other in this process with all threads, then
in ``--jobs`` processes with an equal share of the threads, costliest first, as ``--jobs`` runs them.
The wall time of each way includes building the networks (and, side by side, starting the processes).

    python benchmarks/side_by_side.py                    # plain20, resnet20, plain56, resnet56; 2 jobs
    python benchmarks/side_by_side.py --steps 20 --models resnet20,resnet56
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_step import make_step  # noqa: E402


def train_steps(model: str, batch: int, steps: int, threads: int) -> tuple[str, float]:
    """Build the network and its step, one untimed step, then ``steps`` timed ones: (model, images/s)."""
    torch.set_num_threads(threads)
    step = make_step(model, batch, True, "fp32")
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return model, steps * batch / (time.perf_counter() - start)


def cost(model: str) -> int:
    return int("".join(c for c in model if c.isdigit()) or 0)  # depth: the work per step of a CIFAR net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="plain20,resnet20,plain56,resnet56")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per network")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    threads = torch.get_num_threads()
    share = max(1, threads // args.jobs)
    print(
        f"# {len(models)} networks x {args.steps} steps of batch {args.batch}; {threads} threads, torch "
        f"{torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}\n"
    )

    start = time.perf_counter()
    serial = dict(train_steps(m, args.batch, args.steps, threads) for m in models)
    serial_wall = time.perf_counter() - start

    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(train_steps, m, args.batch, args.steps, share) for m in sorted(models, key=cost, reverse=True)
        ]
        parallel = dict(f.result() for f in futures)
    parallel_wall = time.perf_counter() - start

    print(f"| network | one at a time, {threads} threads (images/s) | side by side, {share} thread(s) (images/s) |")
    print("| --- | --- | --- |")
    for m in models:
        print(f"| {m} | {serial[m]:.1f} | {parallel[m]:.1f} |")
    print(f"| wall time of all (s) | {serial_wall:.1f} | {parallel_wall:.1f} |")
    print(f"\nside by side ({args.jobs} jobs) / one at a time: {serial_wall / parallel_wall:.2f}x faster")


if __name__ == "__main__":
    main()
