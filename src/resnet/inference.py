"""A trained network made fast for inference: BatchNorm folded into convolutions, channels-last, compile.

In eval mode a BatchNorm that directly follows a convolution is an affine map per output channel,
so it can be folded into that convolution's weight and bias: ``w' = w * g / sqrt(v + eps)``,
``b' = (b - m) * g / sqrt(v + eps) + beta``. The folded network computes the same function (up to
float rounding) with one pass over memory fewer per layer. BNs that follow an addition or that
come before a convolution (pre-activation blocks) are left as they are.

Use :func:`prepare_for_inference`; the result is an ``nn.Module`` that takes the same inputs as the
original (any memory format, float32) and returns float32 logits.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
import torch.fx
from torch import nn

from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

# auto: bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU, so CPU results equal eager float32.
# native: as auto, and also bf16 on CPUs that compute it in hardware (the fast recipe's choice).
PRECISIONS = ("auto", "native", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode (its running statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ResNetError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        # Fold in float64 so the folded weights are rounded once, not at every step.
        scale = (
            bn.weight.double() if bn.affine else torch.ones_like(bn.running_var, dtype=torch.float64)
        ) / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.double() if bn.affine else torch.zeros_like(scale)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        weight = conv.weight.double() * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
        fused.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
        fused.bias = nn.Parameter(
            ((bias - bn.running_mean.double()) * scale + shift).to(conv.weight.dtype), requires_grad=False
        )
    return fused


def _conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) module names where the BN's only input is the conv's output and nothing else reads it.

    Found on the traced graph, not from attribute names, so it holds for any block layout: a BN in
    a pre-activation block reads a sum, not a convolution, and is correctly left alone.
    """
    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and isinstance(src.target, str)  # a call_module target is the module's qualified name
            and type(modules[src.target]) is nn.Conv2d
            and len(src.users) == 1
            and calls[src.target] == 1
            and calls[node.target] == 1
        ):
            pairs.append((src.target, node.target))
    return pairs


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every foldable BN merged into its convolution.

    The copy keeps the original classes and forward code; folded BNs become ``nn.Identity``.
    """
    folded = copy.deepcopy(model).eval()
    try:
        pairs = _conv_bn_pairs(folded)
    except Exception as e:  # a model fx cannot trace: still correct, just not folded
        logger.warning("BatchNorm folding skipped: the model could not be traced (%s)", e)
        return folded
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)  # as _conv_bn_pairs found them
        _set_module(folded, conv_name, fold_conv_bn(conv, bn))
        _set_module(folded, bn_name, nn.Identity())
    logger.debug("folded %d BatchNorm layers into convolutions", len(pairs))
    return folded


def precision_name(precision: str, device: torch.device) -> str:
    """The precision to run at: ``auto`` is bf16 on CUDA where supported, else fp16 on CUDA, and fp32
    elsewhere (exact CPU results); ``native`` is ``auto`` plus bf16 on CPUs with bf16 kernels (without
    them, bf16 autocast is emulated and an order of magnitude slower than fp32). fp16 is refused off
    CUDA. Training (autocast) and inference share it."""
    if precision not in PRECISIONS:
        raise ResNetError(f"option 'precision': {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision in ("auto", "native"):
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if precision == "native" and device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ResNetError(f"option 'precision': fp16 needs a CUDA device (on {device.type} use bf16 or fp32)")
    return precision


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of :func:`precision_name`."""
    return DTYPES[precision_name(precision, device)]


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512 and newer: AVX512-BF16, AMX), where
    ``--precision bf16`` pays. On an AVX2-only CPU (measured: AMD EPYC Zen 1) bf16 autocast trains
    ResNet-20 at 19 images/s against 166 in float32 (benchmarks/profile_step.py)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check and check())
    except RuntimeError:  # a build without oneDNN
        return False


class CompileFallback(nn.Module):
    """Runs ``torch.compile(module)``; if compiling fails, logs why once and runs ``module`` eagerly.

    ``torch.compile`` is lazy, so failures (no C compiler, unsupported platform, a backend bug) only
    appear at the first call; this is where they are caught.
    """

    def __init__(self, module: nn.Module, **compile_options: Any) -> None:
        super().__init__()
        self.module = module
        self.compiled: object | None = None
        try:
            self.compiled = torch.compile(module, **compile_options)
        except Exception as e:  # torch.compile unsupported here (e.g. Python version, Windows)
            logger.warning("torch.compile unavailable, running eagerly: %s", e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)  # type: ignore[operator]
            except Exception as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                logger.warning("torch.compile failed, running eagerly from now on: %s", first)
                self.compiled = None
        return self.module(x)


class InferenceModel(nn.Module):
    """The prepared network: moves and casts inputs, runs it, returns float32 logits."""

    def __init__(self, net: nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool) -> None:
        super().__init__()
        self.net = net
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).float()


def prepare_for_inference(
    model: nn.Module,
    device: torch.device | str = "cpu",
    *,
    fold_bn: bool = True,
    channels_last: bool = True,
    compile: bool = False,
    compile_mode: str | None = None,
    precision: str = "auto",
) -> InferenceModel:
    """A fast eval-only copy of ``model`` (the original is untouched). Call it under ``torch.inference_mode()``.

    ``precision``: ``auto`` = float32 on CPU (results equal eager within float tolerance), bf16 on
    CUDA where supported, else fp16; the weights are cast, not autocast, since nothing is trained.
    ``compile`` (``compile_mode`` as in ``torch.compile``) falls back to eager, with a warning, where
    ``torch.compile`` is unavailable or fails.
    """
    device = torch.device(device)
    dtype = resolve_precision(precision, device)
    net = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net = net.to(device=device, dtype=dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks memory_format
    if compile:
        net = CompileFallback(net, mode=compile_mode)
    return InferenceModel(net, device, dtype, channels_last).eval()
