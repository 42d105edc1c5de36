"""The one metrics stream of a run: JSON lines in ``metrics.jsonl``, read by every display.

Each record is a flat dict with ``kind`` ("train" or "val"), ``step`` and ``epoch``; train records add
``loss``, ``train_error``, ``lr`` and ``images_per_s`` (averages since the previous record), val
records add ``val_error``, ``val_top5_error`` (null for 5 classes or fewer), ``val_loss``, ``wall_s``
(the run's wall time so far) and ``eta_s`` (the time left to the end of the final evaluation, estimated).
The progress bar, the log file and TensorBoard are sinks fed from the same records, so they can never disagree.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol, TextIO

from resnet.atomic_files import AppendFile, atomic_write
from resnet.train.time_limit import describe_duration

logger = logging.getLogger(__name__)


def format_record(r: dict[str, Any], total: int | None = None) -> str:
    step = f"step {r['step']}" + (f"/{total}" if total else "")
    parts = [step, f"epoch {r['epoch']:.2f}"]
    if r["kind"] == "train":
        parts += [
            f"loss {r['loss']:.4f}",
            f"train err {100 * r['train_error']:.2f}%",
            f"lr {r['lr']:.4g}",
            f"{r['images_per_s']:.0f} img/s",
        ]
    else:
        parts.append(f"val err {100 * r['val_error']:.2f}%")
        if r.get("val_top5_error") is not None:  # null for 5 classes or fewer
            parts.append(f"top-5 {100 * r['val_top5_error']:.2f}%")
        parts.append(f"val loss {r['val_loss']:.4f}")
        if r.get("eta_s"):  # records of older runs have none
            parts.append(f"~{describe_duration(r['eta_s'])} left")
    return "  ".join(parts)


def format_final(f: dict[str, Any]) -> str:
    """The final-protocol result of a run (``summary.json``'s ``final``), as training prints and logs it."""
    from resnet.evaluate import top5_text

    precision = f", {f['precision']} autocast" if f.get("precision", "fp32") != "fp32" else ""
    return (
        f"final validation ({f['protocol']}{precision}): top-1 error {100 * f['top1_error']:.2f}% "
        f"(accuracy {100 * (1 - f['top1_error']):.2f}%){top5_text(f.get('top5_error'))}, {f['images']} images"
    )


class Sink(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class ProgressBar:
    """tqdm bar with ETA, loss, error, images/s; in quiet mode one log line per validation instead.

    The count moves every step (:meth:`advance`: host-side only, no device sync); loss, error, LR and
    images/s are those of the latest metrics window, shown as soon as its record arrives.
    """

    def __init__(self, total: int, initial: int = 0, quiet: bool = False, file: TextIO | None = None) -> None:
        self.total, self.quiet, self.bar = total, quiet, None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, leave=True, file=file)

    def set_total(self, total: int) -> None:
        """The run's length changed (a time limit planned it)."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def advance(self, step: int) -> None:
        """The training loop has finished ``step`` steps (tqdm redraws at most ten times a second)."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def write(self, r: dict[str, Any]) -> None:
        if self.bar is None:
            if r["kind"] == "val":
                logger.info(format_record(r, self.total))
            return
        self.advance(r["step"])
        if r["kind"] == "train":  # set_postfix redraws: the window that just ended shows at once
            self.bar.set_postfix(
                loss=f"{r['loss']:.3f}",
                err=f"{100 * r['train_error']:.1f}%",
                lr=f"{r['lr']:.3g}",
                ips=f"{r['images_per_s']:.0f}",
            )
        else:
            self.bar.write(format_record(r, self.total))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class LogFile:
    """Human-readable lines in the run folder's ``train.log`` (whole lines only: :class:`AppendFile`): the
    records, and the lines the trainer says beside them (the plan, the --init summary, LR changes, the
    final result)."""

    def __init__(self, path: Path, total: int) -> None:
        self.file, self.total = AppendFile(path), total

    def write(self, r: dict[str, Any]) -> None:
        self.line(format_record(r, self.total))

    def line(self, text: str) -> None:
        self.file.append(text + "\n")

    def close(self) -> None:
        self.file.close()


class TensorBoard:
    """Scalars for TensorBoard (only when the optional ``tensorboard`` package is installed)."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    @staticmethod
    def available() -> bool:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            return False
        return True

    def write(self, r: dict[str, Any]) -> None:
        for k, v in r.items():
            if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"{r['kind']}/{k}", v, r["step"])

    def close(self) -> None:
        self.writer.close()


class MetricsStream:
    """Appends records to ``metrics.jsonl`` (if a path is given; whole lines only) and hands them to the sinks."""

    def __init__(self, path: Path | None, sinks: list[Sink]) -> None:
        self.file = AppendFile(path) if path is not None else None
        self.sinks = sinks

    def emit(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.append(json.dumps(record) + "\n")
        for sink in self.sinks:
            sink.write(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        for sink in self.sinks:
            sink.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a metrics file (a torn last line from a crash is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def truncate_after(path: Path, step: int) -> None:
    """Drop records past ``step``: a resumed run redoes those steps and writes them again."""
    if path.exists():
        kept = [r for r in read_metrics(path) if r["step"] <= step]
        atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept).encode())
