"""The one checkpoint format: a single safetensors file, written atomically.

A checkpoint holds the model weights (``model.*``), optionally the EMA weights (``ema.*``), and for
the ``last`` checkpoint of a run the whole training state: every tensor of it (optimizer buffers,
RNG states) under ``state.*`` and everything else as JSON in the safetensors header. Loading it
never executes code. The header's ``meta`` (model name and options, class names, normalisation,
data and split) is all ``resnet eval`` and ``resnet predict`` need.

Weights of other tools' files are :mod:`resnet.checkpoints.state_dict`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as safetensors_bytes

from resnet.atomic_files import atomic_write
from resnet.checkpoints.meta import validate_meta
from resnet.errors import ResNetError

FORMAT = "resnet-checkpoint/1"
LAST, BEST = "last.safetensors", "best.safetensors"


@dataclass
class Checkpoint:
    meta: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None = None
    state: dict[str, Any] | None = None

    def inference_weights(self) -> dict[str, torch.Tensor]:
        """The weights meant for evaluation: the EMA when the run kept one, else the model's."""
        return self.ema if self.ema is not None and self.meta.get("eval_weights") == "ema" else self.model


# -- packing nested training state into tensors + JSON ---------------------------------------------


def _pack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able form of ``obj``; tensors move to ``tensors`` and are referenced by key.

    Tuples and dicts with non-string keys (optimizer state is keyed by int) are tagged so that
    unpacking gives back exactly the same structure.
    """
    if isinstance(obj, torch.Tensor):
        key = f"state.{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_pack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_pack(k, tensors), _pack(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_unpack(k, tensors): _unpack(v, tensors) for k, v in obj["__items__"]}
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    return obj


# -- our format -------------------------------------------------------------------------------------


def save_checkpoint(
    path: str | Path,
    meta: dict[str, Any],
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, weights in (("model.", model), ("ema.", ema or {})):
        for k, v in weights.items():
            tensors[prefix + k] = v.detach().cpu().contiguous().clone()
    header = {"format": FORMAT, "meta": json.dumps(meta)}
    if state is not None:
        header["state"] = json.dumps(_pack(state, tensors))
    atomic_write(path, safetensors_bytes(tensors, metadata=header))


def is_checkpoint(path: str | Path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT
    except (SafetensorError, OSError, ValueError):
        return False


def _read(path: Path, data: bytes | None) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header metadata and tensors of a safetensors file, or of ``data``, its bytes already read."""
    try:
        if data is None:
            with safe_open(str(path), framework="pt") as f:
                return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size]) if 8 <= 8 + size <= len(data) else None
        if not isinstance(header, dict):
            raise ValueError("no safetensors header")
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("the header's __metadata__ is not a table of strings")
        return metadata, tensors_from_bytes(data)
    except (SafetensorError, OSError, ValueError, RecursionError, KeyError, TypeError, AssertionError) as e:
        # (KeyError: a dtype the safetensors header allows but safetensors.torch cannot make)
        raise ResNetError(f"{path} is not a readable safetensors checkpoint: {type(e).__name__}: {e}") from None


def load_checkpoint(path: str | Path, data: bytes | None = None) -> Checkpoint:
    """Read one of our checkpoints (a file, or a run folder: its best, else its last); ``data``: the
    file's bytes, already read (and checked against a digest: what is checked is what is loaded)."""
    path = resolve_path(path) if data is None else Path(path)
    header, tensors = _read(path, data)
    if header.get("format") != FORMAT:
        raise ResNetError(
            f"{path} is a plain safetensors file, not a resnet checkpoint (no model name or "
            "classes in it); load its weights with load_weights(model, path)"
        )
    meta = validate_meta(_header_json(header, "meta", path), path)
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")} or None
    state_tensors = {k: v for k, v in tensors.items() if k.startswith("state.")}
    state = None
    if "state" in header:
        try:
            state = _unpack(_header_json(header, "state", path), state_tensors)
        except (KeyError, TypeError, ValueError, RecursionError) as e:
            raise ResNetError(
                f"{path}: damaged training state (a tensor it refers to is missing or the "
                f"structure is malformed: {type(e).__name__} {e})"
            ) from None
    return Checkpoint(meta, model, ema, state)


def _header_json(header: dict[str, str], key: str, path: Path) -> Any:
    """One JSON field of the safetensors header; a missing, unparsable or absurdly nested one is one line."""
    if key not in header:
        raise ResNetError(f"{path}: damaged checkpoint, the header has no {key!r}")
    try:
        return json.loads(header[key])
    except (ValueError, RecursionError) as e:
        raise ResNetError(
            f"{path}: damaged checkpoint, header {key!r} is not valid JSON ({type(e).__name__}: {str(e)[:80]})"
        ) from None


def resolve_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder -> its ``best`` checkpoint, else its ``last``."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise ResNetError(f"{path} holds no checkpoint ({BEST} or {LAST})")
    if not path.is_file():
        raise ResNetError(f"checkpoint {path} does not exist")
    return path
