"""The device and the options that only change speed, with per-device defaults.

On CPU everything is off (float32, contiguous NCHW, eager); on CUDA ``auto`` means bf16 autocast
(fp16 where bf16 is unsupported) and channels-last. ``--precision native`` adds bf16 on CPUs with
bf16 kernels. ``torch.compile`` is ``on``, ``off`` or, for training, ``auto``: decided during the run
by what it pays for the run's length (:mod:`resnet.train.compile_choice`); here ``auto`` is off.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from resnet.errors import ResNetError
from resnet.inference import DTYPES, cpu_has_native_bf16, precision_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Speed:
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16"
    channels_last: bool
    compile: bool

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.precision == "fp32":
            yield
        else:
            with torch.autocast(self.device.type, dtype=DTYPES[self.precision]):
                yield

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def describe(self) -> str:
        return (
            f"device {self.device}, autocast {self.precision}, channels_last "
            f"{'on' if self.channels_last else 'off'}, compile {'on' if self.compile else 'off'}"
        )


def at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """Logits for the loss: autocast's bf16/fp16 ones upcast, float32 and float64 ones left as they are."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ResNetError(
            f"option 'device': unknown device {name!r} (choose from auto, cpu, cuda, cuda:N, mps)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ResNetError("option 'device': CUDA is not available on this machine (use --device cpu)")
        return torch.device("cuda", device.index if device.index is not None else local_rank)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ResNetError("option 'device': MPS is not available on this machine (use --device cpu)")
    return device


def resolve_speed(
    device: str = "auto",
    precision: str = "auto",
    channels_last: str = "auto",
    compile: str = "off",
    local_rank: int = 0,
) -> Speed:
    """How to run: the device (``auto``: this process's GPU, else the CPU), autocast precision, channels-last
    (``auto``: on for CUDA) and ``torch.compile`` (``on``; ``off`` and ``auto`` start eager), from the
    options as the user gave them."""
    resolved = resolve_device(device, local_rank)
    channels_last_on = resolved.type == "cuda" if channels_last == "auto" else channels_last == "on"
    name = precision_name(precision, resolved)
    if name == "bf16" and resolved.type == "cpu" and not cpu_has_native_bf16():
        logger.warning(
            "--precision bf16: this CPU has no bf16 kernels (AVX-512 or newer), so bf16 is emulated "
            "and many times slower than fp32 here; --precision native picks bf16 only where it pays"
        )
    return Speed(resolved, name, channels_last_on, compile == "on")
