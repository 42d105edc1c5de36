"""Where a CPU training step of a CIFAR ResNet spends its time, by kind of work.

Profiles the trainer's step (the project's model, its foreach SGD with the paper's momentum and
weight decay, cross-entropy) with ``torch.profiler`` and sums the self time of every operator of the
forward and backward pass into the kinds that matter for speed: convolutions, BatchNorm, ReLU, the
residual addition and option-A shortcut, the rest; the optimizer update is timed on its own. The
batched CIFAR augmentation the trainer uses (``PadCropFlipNormalize``) is timed on its own, on
random uint8 images. Then images/s of the
step in each memory format and precision, and with 1 and 2 threads, interleaved in one process so
that the ratios hold even on a busy machine (the absolute numbers only on an idle one).

    python benchmarks/profile_step.py                       # resnet20, batch 128
    python benchmarks/profile_step.py --model resnet56 --steps 3
    python benchmarks/profile_step.py --precision bf16      # the bf16 autocast step's breakdown
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resnet import create_model  # noqa: E402
from resnet.data.batched import PadCropFlipNormalize, random_crop_params  # noqa: E402
from resnet.inference import cpu_has_native_bf16  # noqa: E402
from resnet.train.build import make_optimizer  # noqa: E402
from resnet.train.config import TrainConfig  # noqa: E402

KINDS = (  # (kind, operator name fragments) of the forward and backward pass; the first match wins
    ("convolution", ("convolution", "conv2d")),
    ("batch norm", ("batch_norm",)),
    ("ReLU", ("relu", "threshold_backward", "clamp_min")),
    ("residual add, shortcut", ("aten::add", "aten::pad", "constant_pad", "slice", "narrow")),
)


def kind_of(name: str) -> str:
    for kind, fragments in KINDS:
        if any(f in name for f in fragments):
            return kind
    return "other (loss, copies, allocation, ...)"


def make_step(model_name: str, batch: int, channels_last: bool, precision: str, parts: bool = False):
    """One training step; with ``parts``, (forward and backward, optimizer update) as two calls."""
    torch.manual_seed(0)
    model = create_model(model_name)
    cfg = TrainConfig()  # the paper's SGD: momentum 0.9, weight decay 1e-4, foreach updates
    opt = make_optimizer(model, cfg)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    loss_fn = nn.CrossEntropyLoss()

    def forward_backward() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn(model(x).float(), y)
        loss.backward()

    def update() -> None:
        opt.step()
        opt.zero_grad(set_to_none=True)

    def step() -> None:
        forward_backward()
        update()

    return (forward_backward, update) if parts else step


def profile_kinds(forward_backward, update, steps: int) -> dict[str, float]:
    """Self CPU milliseconds per step, by kind: the forward and backward pass under the profiler, the
    optimizer update timed on its own (on CPU its foreach ops run as per-tensor adds and multiplies,
    which the profiler would mix with the residual additions)."""
    from torch.profiler import ProfilerActivity, profile

    forward_backward()
    update()
    totals: dict[str, float] = {}
    updates = []
    for _ in range(steps):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            forward_backward()
        for event in prof.key_averages():
            if event.key.startswith("aten::") or event.key.startswith("mkldnn"):
                kind = kind_of(event.key)
                totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total / 1000 / steps
        start = time.perf_counter()
        update()
        updates.append(time.perf_counter() - start)
    totals["optimizer (SGD update)"] = 1000 * statistics.median(updates)
    return totals


def augmentation_ms(batch: int, repeats: int = 20) -> float:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10_000, 3, 32, 32), dtype=torch.uint8, generator=g)
    shift, divisor = torch.full((3, 32, 32), 120.0), torch.full((3, 32, 32), 64.0)
    augment = PadCropFlipNormalize(images, shift, divisor, pad=4)
    times = []
    for _ in range(repeats):
        idx = torch.randint(0, len(images), (batch,), generator=g)
        dy, dx, flip = random_crop_params(batch, 4, g)
        start = time.perf_counter()
        augment(idx, dy, dx, flip)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def images_per_s(variants: dict[str, tuple], batch: int, rounds: int, steps: int) -> dict[str, float]:
    """Interleaved rounds; the median round of each variant."""
    built = {name: (make_step(*args), threads) for name, (args, threads) in variants.items()}
    per: dict[str, list[float]] = {name: [] for name in built}
    default_threads = torch.get_num_threads()
    for step, threads in built.values():  # warm-up
        torch.set_num_threads(threads)
        step()
    for _ in range(rounds):
        for name, (step, threads) in built.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            per[name].append(steps * batch / (time.perf_counter() - start))
    torch.set_num_threads(default_threads)
    return {name: statistics.median(v) for name, v in per.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="profiled steps, and timed steps per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="the profiled step's precision (default: fp32)"
    )
    args = p.parse_args()
    threads = torch.get_num_threads()
    bf16 = cpu_has_native_bf16()
    print(
        f"# {args.model}, batch {args.batch}, {threads} threads, torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {'yes' if bf16 else 'no'}\n"
    )

    totals = profile_kinds(*make_step(args.model, args.batch, True, args.precision, parts=True), args.steps)
    augment = augmentation_ms(args.batch)
    totals["augmentation (batched crop, flip, normalise)"] = augment
    whole = sum(totals.values())
    print(f"| kind of work ({args.precision}, channels-last) | ms per step | share |\n| --- | --- | --- |")
    for kind, ms in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {ms:.1f} | {100 * ms / whole:.1f}% |")
    print(f"| all | {whole:.1f} | 100% |\n")

    variants = {
        "fp32 NCHW": ((args.model, args.batch, False, "fp32"), threads),
        "fp32 channels-last": ((args.model, args.batch, True, "fp32"), threads),
        "bf16 channels-last": ((args.model, args.batch, True, "bf16"), threads),
        "fp32 channels-last, 1 thread": ((args.model, args.batch, True, "fp32"), 1),
    }
    speeds = images_per_s(variants, args.batch, args.rounds, args.steps)
    base = speeds["fp32 NCHW"]
    print("| step | images/s | vs fp32 NCHW |\n| --- | --- | --- |")
    for name, value in speeds.items():
        print(f"| {name} | {value:.1f} | {value / base:.2f}x |")


if __name__ == "__main__":
    main()
