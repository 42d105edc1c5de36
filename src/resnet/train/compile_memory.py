"""What ``--compile auto`` measured on this machine, kept for the next run of the same kind.

Trying ``torch.compile`` costs a run about a minute, and where the compiled step turns out slower (as
on 2 AMD EPYC Zen 5 cores in bf16: 0.87x to 0.98x) every later run would pay that minute again. So
each measured trial is written to ``<cache dir>/compile-auto.json`` (``$RESNET_CACHE``, as the image
cache), under a key naming everything the two step times depend on: the processor or GPU, the PyTorch
version, the threads, the precision and memory format, the network, the micro-batch and the image
size. A run of the same kind then decides from that measurement instead of trying again. Deleting the
file measures again. A trial measured while the machine was busy with other work (a load average
above 1.5 per CPU this process may use) is not kept: it would stand for every later run. An
unreadable file is said in one line and replaced at the next trial; a cache folder that cannot be
written is said in one line and the run goes on.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from resnet.atomic_files import atomic_write
from resnet.data.cache import default_cache_dir
from resnet.device import Speed
from resnet.errors import ResNetError

logger = logging.getLogger(__name__)

FILE = "compile-auto.json"
BUSY_LOAD_PER_CPU = 1.5  # this run's own threads make about 1 a CPU


def busy() -> str | None:
    """Why the machine is too busy for a trial to be kept (other processes competing), or None."""
    if not hasattr(os, "getloadavg"):
        return None  # (Windows) nothing to tell by
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0]
    return f"load average {load:.1f} on {cpus} CPUs" if load > BUSY_LOAD_PER_CPU * cpus else None


def processor(device: torch.device) -> str:
    """The chip a step runs on: the GPU's name, or the CPU's model name, family and model number."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    if "model name" in fields:
        return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    return platform.processor() or platform.machine() or "unknown CPU"


def trial_key(speed: Speed, network: dict[str, Any], batch: int, image: str) -> str:
    """Everything the eager and the compiled step times depend on, in one line."""
    threads = f"{torch.get_num_threads()} threads" if speed.device.type == "cpu" else str(speed.device)
    layout = "channels_last" if speed.channels_last else "contiguous"
    return " | ".join(
        [
            processor(speed.device),
            f"torch {torch.__version__}",
            threads,
            f"{speed.precision} {layout}",
            json.dumps(network, sort_keys=True),
            f"batch {batch}",
            image,
        ]
    )


@dataclass(frozen=True)
class Trial:
    """One measured trial: the eager and the compiled step times, and when."""

    eager_ms: float
    compiled_ms: float
    measured: str

    @property
    def speedup(self) -> float:
        return self.eager_ms / self.compiled_ms


class CompileMemory:
    """The trials measured on this machine, one JSON file of ``{key: Trial}``."""

    def __init__(self, folder: str | Path | None = None):
        self.path = Path(folder if folder is not None else default_cache_dir()) / FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            logger.warning("compile auto: %s is unreadable (%s); measuring again", self.path, e)
            return {}
        if not isinstance(data, dict):
            logger.warning("compile auto: %s holds no table of trials; measuring again", self.path)
            return {}
        return data

    def recall(self, key: str) -> Trial | None:
        entry: Any = self._read().get(key)
        try:
            trial = Trial(float(entry["eager_ms"]), float(entry["compiled_ms"]), str(entry["measured"]))
        except (TypeError, KeyError, ValueError):
            return None  # none, or not one this version wrote: measured again
        return trial if trial.eager_ms > 0 and trial.compiled_ms > 0 else None

    def remember(self, key: str, eager_s: float, compiled_s: float) -> None:
        if (why := busy()) is not None:
            logger.warning("compile auto: the trial is not kept for the next run: the machine is busy (%s)", why)
            return
        data = self._read()
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        data[key] = {"eager_ms": round(1000 * eager_s, 3), "compiled_ms": round(1000 * compiled_s, 3), "measured": when}
        try:
            atomic_write(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        except ResNetError as e:
            logger.warning("compile auto: the trial is not kept for the next run: %s", e)
