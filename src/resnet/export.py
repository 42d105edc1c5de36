"""Export a trained network to TorchScript or ONNX, checked against eager PyTorch at export time.

The exported graph is the inference form (BatchNorm folded into the convolutions, see
:mod:`resnet.inference`), with a free batch dimension. Before the file is kept, its outputs on
random inputs at two batch sizes are compared with the eager, unfolded network; a mismatch beyond
float tolerance removes the file and raises :class:`~resnet.errors.ResNetError`.

ONNX needs the optional ``onnx``, ``onnxscript`` and ``onnxruntime`` packages (``pip install
deep-residual-learning[export]``); ONNX Runtime both checks the export and serves as a CPU inference backend
(:class:`OnnxRuntimeModel`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet.atomic_files import atomic_write
from resnet.data.transforms import PAPER_VIEW
from resnet.errors import ResNetError
from resnet.inference import fold_batchnorm

logger = logging.getLogger(__name__)

# The extra, under the distribution name and from a source checkout.
INSTALL_HINT = "pip install 'deep-residual-learning[export]', or from a source checkout pip install -e '.[export]'"
FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
# float32 through a few hundred layers: folding and a different kernel order move logits by ~1e-5.
RTOL, ATOL = 1e-3, 1e-4
CHECK_BATCHES = (1, 3)  # two sizes, so a batch dimension baked into the graph is caught
METADATA_KEYS = ("classes", "normalization", "input")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float  # largest |exported - eager| over the check inputs


def missing_onnx_packages() -> list[str]:
    """Which of the ``export`` extra's packages (onnx, onnxscript, onnxruntime) are not installed."""
    return [m for m in ("onnx", "onnxscript", "onnxruntime") if not _importable(m)]


def _require_onnx() -> None:
    missing = missing_onnx_packages()
    if missing:
        raise ResNetError(f"--format onnx needs {', '.join(missing)} ({INSTALL_HINT})")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress and deprecation notes to stdout/warnings; keep library output clean."""
    noisy = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in noisy]
    try:
        for lg in noisy:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(noisy, levels):
            lg.setLevel(level)


class OnnxRuntimeModel:
    """An ONNX file run by ONNX Runtime on the CPU, called like the PyTorch network (tensor in, tensor out)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        if not _importable("onnxruntime"):
            raise ResNetError(f"the ONNX Runtime backend needs onnxruntime ({INSTALL_HINT})")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise ResNetError(f"cannot load ONNX model {path}: {str(e).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().to("cpu", torch.float32).contiguous()
        return torch.from_numpy(self.session.run(None, {self.input_name: x.numpy()})[0])


def deployment_metadata(meta: dict[str, Any], input_shape: tuple[int, int, int]) -> dict[str, str]:
    """What a deployed model needs besides its graph, as JSON strings: class names and preprocessing.

    Keys: ``classes`` (names, index order of the logits), ``normalization`` (the checkpoint's, as
    :meth:`resnet.data.Normalization.to_dict` writes it) and ``input`` (layout, size, pixel scale).
    """
    channels, height, width = input_shape
    return {
        "classes": json.dumps(list(meta["classes"])),
        "normalization": json.dumps(meta["normalization"]),
        "input": json.dumps(
            {
                "model": meta["model"],
                "layout": "NCHW",
                "channels": channels,
                "height": height,
                "width": width,
                "pixels": "0..255 RGB, then normalization",
                "protocol": meta.get("val_protocol", "single"),
                # image files: shorter side resized to `resize`, centre `crop` (the weights' own, else the paper's)
                "view": None if meta.get("image_size") else meta.get("eval_view", PAPER_VIEW.to_dict()),
            }
        ),
    }


def read_metadata(path: str | Path) -> dict[str, str]:
    """The :func:`deployment_metadata` strings stored in an exported ``.onnx`` or TorchScript ``.pt`` file."""
    path = Path(path)
    if path.suffix == ".onnx":
        _require_onnx()
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    extra = dict.fromkeys(METADATA_KEYS, "")
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items() if v}


def _export_torchscript(net: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> nn.Module:
    with _quiet(), torch.no_grad():
        # Tracing, not scripting: the forward code is plain tensor ops; freezing inlines the weights
        # and lets the JIT fuse conv+add+relu for inference.
        scripted = torch.jit.freeze(torch.jit.trace(net, example).eval())
        # Into memory first, then one atomic write: a full disk or a read-only folder is one line,
        # and never leaves a truncated .pt (torch.jit.save writing to the file aborts the process).
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer, _extra_files=metadata)
        atomic_write(path, buffer.getvalue())
        return torch.jit.load(str(path))


def _export_onnx(net: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> OnnxRuntimeModel:
    _require_onnx()
    batch = torch.export.Dim("batch")
    with _quiet():
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
        assert program is not None  # with dynamo=True, export returns the ONNXProgram
        proto = program.model_proto  # weights included: these networks are far below protobuf's 2 GB
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(path, proto.SerializeToString())  # complete or absent, one line if it cannot be written
    return OnnxRuntimeModel(path)


def check_against_eager(exported: object, eager: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """Largest absolute difference over random inputs at each of CHECK_BATCHES; raises if beyond tolerance."""
    worst = 0.0
    gen = torch.Generator().manual_seed(0)
    for batch in CHECK_BATCHES:
        x = torch.randn(batch, *input_shape, generator=gen)
        with torch.no_grad():
            want = eager(x)
            got = torch.as_tensor(exported(x))  # type: ignore[operator]
        if got.shape != want.shape:
            raise ResNetError(
                f"exported model gives shape {tuple(got.shape)} for batch {batch}, eager gives {tuple(want.shape)}"
            )
        worst = max(worst, (got - want).abs().max().item())
        if not torch.allclose(got, want, rtol=RTOL, atol=ATOL):
            raise ResNetError(
                f"exported model differs from eager by {worst:.3g} at batch {batch} "
                f"(tolerance rtol={RTOL}, atol={ATOL})"
            )
    return worst


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of ``path``, ``None`` if absent: an atomic write makes a new inode."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def export_model(
    model: nn.Module,
    path: str | Path,
    format: str,
    input_shape: tuple[int, int, int],
    *,
    fold_bn: bool = True,
    metadata: dict[str, str] | None = None,
) -> ExportResult:
    """Write ``model`` (eval mode, CPU, float32) as ``format`` to ``path`` and check it against eager.

    ``input_shape`` is (channels, height, width) of one image. ``metadata`` (string keys and values,
    e.g. :func:`deployment_metadata`) is stored in the file: ONNX ``metadata_props``, TorchScript
    extra files. The file is removed again if the check fails.
    """
    if format not in FORMATS:
        raise ResNetError(f"--format must be one of {', '.join(FORMATS)} (got {format!r})")
    path = Path(path)
    if not path.parent.is_dir():
        raise ResNetError(f"--output {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):  # before the export's work (root passes; atomic_write then says)
        raise ResNetError(f"--output {path}: folder {path.parent} is not writable")
    eager = model.to("cpu", torch.float32).eval()
    net = fold_batchnorm(eager) if fold_bn else eager
    example = torch.randn(2, *input_shape)
    before = _identity(path)
    try:
        exported = (_export_torchscript if format == "torchscript" else _export_onnx)(
            net, example, path, metadata or {}
        )
        diff = check_against_eager(exported, eager, input_shape)
    except BaseException:
        # Only a file this export wrote: a failed write (one line, from atomic_write) keeps the previous one.
        if _identity(path) not in (None, before):
            path.unlink()
        raise
    # debug, not info: `resnet export` prints its own line, and the log would repeat it on stderr
    logger.debug("exported %s to %s (max |diff| vs eager %.2e)", format, path, diff)
    return ExportResult(path, format, diff)


def input_shape_from_meta(meta: dict, model_name: str) -> tuple[int, int, int]:
    """(C, H, W) a checkpoint's network was trained on: its data's image size, else the family's."""
    from resnet.models import get_spec

    channels = int(meta.get("model_options", {}).get("in_channels", 3))
    size = meta.get("image_size")
    if size:
        return channels, int(size[0]), int(size[1])
    side = get_spec(model_name).input_size
    return channels, side, side
