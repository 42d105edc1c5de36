"""Model weights from any file: our checkpoints, plain safetensors, and ``torch.save`` files of other tools.

Files of other tools (a torchvision ``.pth`` state dict, ``{"state_dict": ...}`` / ``{"model": ...}``
wrappers, ``module.`` prefixes from DataParallel/DDP) load through ``torch.load(weights_only=True)``:
tensors only, never pickled code. A strict load lists what does not fit in one line.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as safetensors_load
from torch import nn

from resnet.checkpoints.format import is_checkpoint, load_checkpoint, resolve_path
from resnet.errors import ResNetError

_WRAPPERS = ("state_dict", "model_state_dict", "model", "module", "net")
_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | Path, data: bytes | None = None) -> dict[str, torch.Tensor]:
    """Model weights from our checkpoints, plain safetensors files or ``torch.save`` files of other tools.

    ``data``: the file's bytes, already read (and checked against a hash): they are what is loaded,
    so no one can swap the file between the check and the load.
    """
    path = resolve_path(path) if data is None else Path(path)
    if data is None and is_checkpoint(path):
        return load_checkpoint(path).inference_weights()
    try:
        if path.suffix == ".safetensors":
            if data is not None:
                obj: Any = safetensors_load(data)
            else:
                with safe_open(str(path), framework="pt") as f:
                    obj = {k: f.get_tensor(k) for k in f.keys()}
        else:
            obj = torch.load(io.BytesIO(data) if data is not None else path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, SafetensorError, EOFError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ResNetError(
            f"cannot load weights from {path} (only tensors are accepted, no pickled code): {first}"
        ) from None
    while isinstance(obj, dict) and not _is_tensor_dict(obj):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise ResNetError(f"{path} holds no state dict (top-level keys: {', '.join(map(str, obj))})")
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise ResNetError(f"{path} holds no state dict")
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def _is_tensor_dict(d: dict) -> bool:
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def nonfinite_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """The floating-point tensors of ``state`` that hold a NaN or an infinity."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def listed(keys: list[str], limit: int = 6) -> str:
    """The first ``limit`` keys, comma-separated, and how many more there are."""
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def state_mismatch(
    expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], skip: Callable[[str], bool] = lambda key: False
) -> str | None:
    """What keeps ``state`` from loading into a model whose state dict is ``expected`` (keys for which
    ``skip`` is true left out): missing and unexpected keys, shape mismatches; None if it fits."""
    # Old files (torchvision's among them) lack BN's num_batches_tracked; BN fills it in itself.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked") and not skip(k)]
    unexpected = [k for k in state if k not in expected and not skip(k)]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape and not skip(k)
    ]
    parts = [f"missing keys: {listed(missing)}"] if missing else []
    parts += [f"unexpected keys: {listed(unexpected)}"] if unexpected else []
    parts += [f"shape mismatches (file vs model): {listed(shapes, 3)}"] if shapes else []
    return "; ".join(parts) or None


def load_weights(
    model: nn.Module, source: str | Path | dict[str, torch.Tensor], name: str = "the model", where: str | None = None
) -> None:
    """Load weights strictly; a mismatch raises one line listing the missing and unexpected keys.

    ``where`` names the weights in that line (default: the file, or "the checkpoint" for a dict).
    """
    state = read_state_dict(source) if not isinstance(source, dict) else source
    shown: str | Path = where or (source if not isinstance(source, dict) else "the checkpoint")
    problems = state_mismatch(model.state_dict(), state)
    if problems:
        raise ResNetError(f"weights in {shown} do not fit {name}: {problems}")
    model.load_state_dict(state, strict=False)
