"""Training and inference images/s of this project's fast path against baselines, in one run (``resnet bench``).

For each network (``resnet20`` at 32x32, ``resnet50`` at 224x224) and each task (train, infer), every
implementation is built and warmed up (compiling included), then timed in interleaved rounds so that
all of them see the same machine load; the median round gives images/s. Inputs are synthetic and
already on the device, so the numbers are the network's and the step's, not the data pipeline's.

Implementations:
* baseline: the same network, eager, float32, NCHW, a textbook loop (forward, loss, ``zero_grad``,
  backward, SGD step) / ``model.eval()`` under ``torch.no_grad()``.
* fast: training exactly as the trainer runs it (``resnet.device.Speed`` with channels-last
  and ``torch.compile`` on, autocast at the device's default precision: float32 on CPU, bf16 on CUDA);
  inference through :func:`resnet.inference.prepare_for_inference` under ``torch.inference_mode()``.
* fast-bf16 (CPU with native bf16 only): the same with ``--precision bf16`` (bf16 autocast for training,
  bf16 weights for inference); faster, but its results are bf16's, not float32's.
* torchvision ``resnet50`` with a standard AMP loop / eager fp32 inference, where importable.
* ONNX Runtime (CPU inference) on the exported network, where installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import cast

import torch
from torch import nn

from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

MODELS = {"resnet20": 32, "resnet50": 224}  # network -> input side
# (train batch, inference batch) per device: the paper's CIFAR batch; what 2 CPU cores or one GPU can take.
BATCHES = {
    "cpu": {"resnet20": (128, 256), "resnet50": (16, 16)},
    "cuda": {"resnet20": (128, 1024), "resnet50": (256, 256)},
}
QUICK_BATCH = 4
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4


@dataclass
class Settings:
    device: torch.device
    compile: bool
    compile_mode: str | None
    warmup: int
    rounds: int
    iters: int
    quick: bool
    models: list[str]
    batches: dict[str, tuple[int, int]]
    isolate: bool = True  # each (network, task) group in a fresh process
    threads: int = field(default_factory=torch.get_num_threads)


@dataclass
class Row:
    model: str
    input: int
    task: str  # "train" or "infer"
    batch: int
    implementation: str
    images_per_s: float | None = None
    vs_baseline: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


Step = Callable[[], object]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _compile(module: nn.Module, s: Settings) -> nn.Module:
    from resnet.inference import CompileFallback

    return CompileFallback(module, mode=s.compile_mode) if s.compile else module


# -- training steps ----------------------------------------------------------------------------------


def _baseline_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Step:
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _fast_train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: Settings, precision: str = "auto"
) -> tuple[Step, str]:
    """The trainer's step (:func:`resnet.train.step.train_step`) with its speed options on."""
    from resnet.device import resolve_speed
    from resnet.train.build import make_optimizer
    from resnet.train.config import TrainConfig
    from resnet.train.step import train_step

    cfg = TrainConfig().replace(
        device=str(s.device),
        channels_last="on",
        compile="on" if s.compile else "off",
        precision=precision,
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
    )
    speed = resolve_speed(cfg.device, cfg.precision, cfg.channels_last, cfg.compile)
    if speed.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks memory_format
    forward = _compile(model, s)
    opt = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(s.device.type) if speed.precision == "fp16" else None
    loss_fn = nn.CrossEntropyLoss()

    def step() -> torch.Tensor:
        return train_step(forward, [(x, y)], optimizer=opt, criterion=loss_fn, speed=speed, scaler=scaler)

    return step, speed.describe()


def _torchvision_train(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> Step:
    """torchvision's resnet50 under the standard AMP recipe (fp16 + GradScaler on CUDA, bf16 on CPU)."""
    import torchvision

    model = torchvision.models.resnet50().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> torch.Tensor:
        opt.zero_grad()
        with torch.autocast(device.type, dtype=dtype):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    return step


# -- inference ---------------------------------------------------------------------------------------


def _no_grad(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mode: Callable = torch.no_grad) -> Step:
    def step() -> torch.Tensor:
        with mode():
            return net(x)

    return step


def _onnx_runtime(model: nn.Module, x: torch.Tensor, folder: Path) -> Step:
    from resnet.export import OnnxRuntimeModel, export_model

    shape = cast("tuple[int, int, int]", tuple(x.shape[1:]))  # (C, H, W) of an NCHW batch
    result = export_model(model, folder / "model.onnx", "onnx", shape)
    return _no_grad(OnnxRuntimeModel(result.path), x)


# -- measuring ---------------------------------------------------------------------------------------


def _measure(steps: dict[str, Step], s: Settings) -> dict[str, float]:
    """Seconds per step: median over interleaved rounds of the mean time of ``iters`` steps."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(s.rounds):
        for name, step in steps.items():
            _sync(s.device)
            t = time.perf_counter()
            for _ in range(s.iters):
                step()
            _sync(s.device)
            times[name].append((time.perf_counter() - t) / s.iters)
    return {k: statistics.median(v) for k, v in times.items()}


def _warm(name: str, step: Step, s: Settings) -> Step:
    t = time.perf_counter()
    for _ in range(s.warmup):
        step()
    _sync(s.device)
    logger.info("  %s: warm-up %.1fs", name, time.perf_counter() - t)
    return step


def _bench_one(name: str, task: str, s: Settings, tmp: Path) -> list[Row]:
    from resnet.inference import cpu_has_native_bf16, prepare_for_inference
    from resnet.models import build_model

    side = MODELS[name]
    batch = s.batches[name][0 if task == "train" else 1]
    dev = s.device
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, side, side, generator=gen).to(dev)
    y = torch.randint(0, 1000 if side == 224 else 10, (batch,), generator=gen).to(dev)
    torch.manual_seed(0)
    model = build_model(name).to(dev)
    rows = {k: Row(name, side, task, batch, k) for k in ("baseline", "fast", "fast-bf16", "torchvision", "onnxruntime")}
    # On a CPU with native bf16 (AVX512-BF16/AMX) the bf16 path is worth showing beside the exact one;
    # it is what --precision bf16 does, and not "the same results within float32 tolerance".
    cpu_bf16 = dev.type == "cpu" and cpu_has_native_bf16()
    rows["baseline"].note = "eager fp32 NCHW, " + ("textbook SGD loop" if task == "train" else "no_grad")
    steps: dict[str, Step] = {}
    logger.info("%s %s, batch %d:", name, task, batch)
    if task == "train":
        initial = {k: v.clone() for k, v in model.state_dict().items()}  # every variant starts from these
        baseline = build_model(name).to(dev)
        baseline.load_state_dict(initial)
        steps["baseline"] = _warm("baseline", _baseline_train(baseline.train(), x, y), s)
        fast, described = _fast_train(model.train(), x, y, s)
        rows["fast"].note = f"trainer's step: {described}"
        steps["fast"] = _warm("fast", fast, s)
        if cpu_bf16:
            twin = build_model(name).to(dev)
            twin.load_state_dict(initial)
            fast16, described = _fast_train(twin.train(), x, y, s, precision="bf16")
            rows["fast-bf16"].note = f"trainer's step with --precision bf16: {described}"
            steps["fast-bf16"] = _warm("fast-bf16", fast16, s)
    else:
        model.eval()
        steps["baseline"] = _warm("baseline", _no_grad(model, x), s)
        fast_net = prepare_for_inference(model, dev, compile=s.compile, compile_mode=s.compile_mode)
        steps["fast"] = _warm("fast", _no_grad(fast_net, x, torch.inference_mode), s)
        with torch.no_grad():
            diff = (fast_net(x) - model(x)).abs().max().item()
        rows["fast"].note = (
            f"BN folded, channels_last, compile {'on' if s.compile else 'off'}, "
            f"{fast_net.dtype}, inference_mode; max |logit diff| {diff:.1e}"
        )
        rows["fast"].extra["max_abs_diff"] = diff
        if cpu_bf16:
            net16 = prepare_for_inference(model, dev, compile=s.compile, compile_mode=s.compile_mode, precision="bf16")
            steps["fast-bf16"] = _warm("fast-bf16", _no_grad(net16, x, torch.inference_mode), s)
            with torch.no_grad():
                diff16 = (net16(x).float() - model(x)).abs().max().item()
            rows[
                "fast-bf16"
            ].note = f"as fast, weights and activations in bf16 (--precision bf16); max |logit diff| {diff16:.1e}"
            rows["fast-bf16"].extra["max_abs_diff"] = diff16
    if name == "resnet50":
        if importlib.util.find_spec("torchvision") is None:
            rows["torchvision"].note = "skipped: torchvision is not importable"
        elif task == "train":
            rows["torchvision"].note = "torchvision resnet50, standard AMP loop"
            steps["torchvision"] = _warm("torchvision", _torchvision_train(x, y, dev), s)
        else:
            import torchvision

            tv = torchvision.models.resnet50().to(dev).eval()
            rows["torchvision"].note = "torchvision resnet50, eager fp32, no_grad"
            steps["torchvision"] = _warm("torchvision", _no_grad(tv, x), s)
    if task == "infer" and dev.type == "cpu":
        from resnet.export import missing_onnx_packages

        if not missing_onnx_packages():
            rows["onnxruntime"].note = "exported ONNX (BN folded), ONNX Runtime CPU"
            steps["onnxruntime"] = _warm("onnxruntime", _onnx_runtime(model, x.cpu(), tmp), s)
        else:
            rows["onnxruntime"].note = "skipped: onnx/onnxscript/onnxruntime not installed"
    seconds = _measure(steps, s)
    for key, t in seconds.items():
        rows[key].images_per_s = batch / t
        rows[key].vs_baseline = seconds["baseline"] / t
    return [r for r in rows.values() if r.note]


def _bench_isolated(name: str, task: str, s: Settings, tmp: str, log_level: int) -> list[Row]:
    """One (network, task) group in a fresh interpreter (the child's entry point)."""
    logging.basicConfig(level=log_level, format="%(message)s")
    torch.set_num_threads(s.threads)
    return _bench_one(name, task, s, Path(tmp))


def run_bench(s: Settings) -> dict:
    """Every (network, task) group, each in its own fresh process (unless ``s.isolate`` is off).

    Why: eager CPU speed depends on the C allocator's state, which earlier groups change. Measured
    on 2 cores (benchmarks/RESULTS.md), eager ResNet-50 inference at batch 16 ran at 12.2 images/s in
    a fresh process and at 19.8 in a run where the other groups had gone before it in the same
    process. A fresh process per group makes each row independent of the order of the groups;
    inside a group the implementations share one process and are interleaved, so they see the same
    conditions.
    """
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        groups = [(name, task) for name in s.models for task in ("train", "infer")]
        if not s.isolate:
            for name, task in groups:
                rows += _bench_one(name, task, s, Path(tmp))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            for name, task in groups:
                with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                    rows += pool.submit(_bench_isolated, name, task, s, tmp, logger.getEffectiveLevel()).result()
    return {
        "date": date.today().isoformat(),
        "machine": machine(s.device),
        "torch": torch.__version__,
        "device": str(s.device),
        "settings": {
            "compile": s.compile,
            "compile_mode": s.compile_mode,
            "warmup": s.warmup,
            "rounds": s.rounds,
            "iters": s.iters,
            "quick": s.quick,
            "isolate": s.isolate,
            "threads": s.threads,
        },
        "rows": [asdict(r) for r in rows],
    }


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    import os

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{torch.get_num_threads()} torch threads, {torch.backends.cpu.get_cpu_capability()}"
    )


def format_table(result: dict) -> str:
    head = ("model", "input", "task", "batch", "implementation", "images/s", "notes", "vs baseline")
    body = [
        (
            r["model"],
            f"{r['input']}x{r['input']}",
            r["task"],
            str(r["batch"]),
            r["implementation"],
            f"{r['images_per_s']:.1f}" if r["images_per_s"] is not None else "-",
            r["note"],
            f"{r['vs_baseline']:.2f}x" if r["vs_baseline"] is not None else "-",
        )
        for r in result["rows"]
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = [
        f"# {result['date']} · {result['machine']} · torch {result['torch']} · device {result['device']}",
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(b, widths)) + " |" for b in body]
    return "\n".join(lines)


def settings_from_args(args: argparse.Namespace) -> Settings:
    from resnet.device import resolve_device

    device = resolve_device(args.device)
    if device.type not in BATCHES:
        raise ResNetError(f"--device {args.device}: bench runs on cpu or cuda")
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        raise ResNetError(f"--models: {', '.join(unknown)} not benchmarked (choose from {', '.join(MODELS)})")
    for opt in ("train_batch", "infer_batch", "warmup", "rounds", "iters"):
        value = getattr(args, opt)
        if value is not None and value < (0 if opt == "warmup" else 1):
            raise ResNetError(f"--{opt.replace('_', '-')} must be a positive number (got {value})")
    batches = {m: (QUICK_BATCH, QUICK_BATCH) if args.quick else BATCHES[device.type][m] for m in args.models}
    if args.train_batch:
        batches = {m: (args.train_batch, b[1]) for m, b in batches.items()}
    if args.infer_batch:
        batches = {m: (b[0], args.infer_batch) for m, b in batches.items()}
    compile_on = args.compile == "on" or (args.compile == "auto" and not args.quick)
    return Settings(
        device,
        compile_on,
        args.compile_mode,
        warmup=1 if args.quick else args.warmup,
        rounds=1 if args.quick else args.rounds,
        iters=1 if args.quick else args.iters,
        quick=args.quick,
        models=list(args.models),
        batches=batches,
        isolate=args.isolate == "on",
    )
