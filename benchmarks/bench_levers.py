"""Each speed lever of the training step on its own: which ones pay on this machine?

`resnet bench` compares the baseline with everything on; this script switches the levers on one at a
time (channels_last, foreach SGD, torch.compile, bf16 autocast) for one network's training step, all
variants built from the same weights and timed in interleaved rounds in one process (median of the
rounds), and prints images/s with the ratio to the eager fp32 NCHW baseline.

    python benchmarks/bench_levers.py                       # resnet20, batch 128, 32x32
    python benchmarks/bench_levers.py --model resnet50 --batch 16 --side 224
    python benchmarks/bench_levers.py --profile "+ torch.compile"   # where that variant's time goes
    python benchmarks/bench_levers.py --batches 64,128,256,512      # one variant at several batch sizes
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from resnet import create_model

# name -> (channels_last, foreach, compile, bf16)
VARIANTS = {
    "eager fp32 NCHW (baseline)": (False, False, False, False),
    "+ foreach SGD": (False, True, False, False),
    "+ channels_last": (True, True, False, False),
    "+ torch.compile": (True, True, True, False),
    "compile without channels_last": (False, True, True, False),
    "+ bf16 autocast (all on)": (True, True, True, True),
    "eager + bf16 autocast": (False, True, False, True),
    "channels_last + bf16, eager": (True, True, False, True),  # the step of an eager cifar-fast run
}


def make_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool, foreach: bool, compile_: bool, bf16: bool
) -> Callable[[], None]:
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile_ else model
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=foreach)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(forward(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


SWEPT = "channels_last + bf16, eager"


def batch_list(text: str) -> list[int]:
    """``--batches``: comma-separated positive batch sizes."""
    try:
        batches = [int(b) for b in text.split(",")]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return batches


def interleaved_medians(steps: dict, rounds: int, iters: int) -> dict:
    """Seconds per step of each step function: 3 warm-up calls each (compiling included), then
    ``rounds`` rounds of ``iters`` calls of every one in turn; the median round counts."""
    for step in steps.values():
        for _ in range(3):
            step()
    times: dict = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            t = time.perf_counter()
            for _ in range(iters):
                step()
            times[key].append((time.perf_counter() - t) / iters)
    return {key: statistics.median(ts) for key, ts in times.items()}


def batch_sweep(args: argparse.Namespace, batches: list[int]) -> None:
    """Images/s of one variant at each batch size, in interleaved rounds (same weights, one process)."""
    torch.manual_seed(0)
    reference = create_model(args.model)
    steps = {}
    for batch in batches:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, args.side, args.side, generator=gen)
        y = torch.randint(0, reference.fc.out_features, (batch,), generator=gen)
        model = create_model(args.model)
        model.load_state_dict(reference.state_dict())
        steps[batch] = make_step(model.train(), x, y, *VARIANTS[args.variant])
    step_s = interleaved_medians(steps, args.rounds, args.iters)
    per_image = {batch: s / batch for batch, s in step_s.items()}
    first = per_image[batches[0]]
    print(
        f"\n{args.model} training step ({args.variant}), {args.side}x{args.side}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; median of {args.rounds} rounds\n"
    )
    print(f"| batch | images/s | vs batch {batches[0]} |\n| ---: | ---: | ---: |")
    for batch, t in per_image.items():
        print(f"| {batch} | {1 / t:,.1f} | {first / t:.2f}x |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--side", type=int, default=32)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument(
        "--profile",
        metavar="VARIANT",
        choices=list(VARIANTS),
        default=None,
        help="also print torch.profiler's table of the most expensive operators of one variant",
    )
    p.add_argument(
        "--batches",
        type=batch_list,
        default=None,
        help="comma-separated batch sizes: time --variant at each, interleaved, instead of every variant at --batch",
    )
    p.add_argument("--variant", choices=list(VARIANTS), default=None, help="with --batches (default: " + SWEPT + ")")
    args = p.parse_args()
    if args.variant and not args.batches:
        p.error("--variant is only used with --batches")
    if args.batches:
        args.variant = args.variant or SWEPT
        batch_sweep(args, args.batches)
        return
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.side, args.side, generator=gen)
    torch.manual_seed(0)
    reference = create_model(args.model)
    y = torch.randint(0, reference.fc.out_features, (args.batch,), generator=gen)
    steps = {}
    for name, levers in VARIANTS.items():
        model = create_model(args.model)
        model.load_state_dict(reference.state_dict())
        steps[name] = make_step(model.train(), x, y, *levers)
    times = interleaved_medians(steps, args.rounds, args.iters)
    base = times[next(iter(VARIANTS))]
    print(
        f"\n{args.model} training step, batch {args.batch}, {args.side}x{args.side}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; median of {args.rounds} rounds\n"
    )
    print("| variant | images/s | vs baseline |\n| --- | ---: | ---: |")
    for name, t in times.items():
        print(f"| {name} | {args.batch / t:,.1f} | {base / t:.2f}x |")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.iters):
                steps[args.profile]()
        print(f"\n{args.profile}: {args.iters} steps under torch.profiler\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
