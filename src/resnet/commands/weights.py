"""``resnet weights [list|download NAME]``: what published weights there are and which are cached; download
one into the cache."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from resnet.weights.fetch import cached_file, fetch, weights_dir
from resnet.weights.published import find_by_name, list_published
from resnet.weights.shipped import list_shipped

DESCRIPTION = (
    "torchvision's published ImageNet weights for this project's networks: "
    "accuracy, file, size and whether they are cached; and the CIFAR-10 networks this project "
    "trained and ships in the package. `resnet weights download NAME` "
    "fetches one (resumable, checked against the SHA-256 prefix in its file name)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    cache_help = "cache root (default: $RESNET_CACHE, else ~/.cache/resnet); files go to its weights/"
    p.add_argument("--cache-dir", default=None, help=cache_help)
    p.add_argument("--json", action="store_true", help="list as JSON, one object per line")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="what is published and what is cached (the default)")
    d = actions.add_parser("download", help="download one file into the cache")
    d.add_argument(
        "name",
        metavar="NAME",
        help="MODEL.WEIGHTS as listed, e.g. resnet50.torchvision-v2 (MODEL alone: its torchvision V1 weights)",
    )
    # SUPPRESS: given before or after ACTION, without the subcommand's default hiding the other.
    d.add_argument("--cache-dir", default=argparse.SUPPRESS, help=cache_help)
    p.set_defaults(action="list")


def run(args: argparse.Namespace) -> int:
    if args.action == "download":
        entry = find_by_name(args.name)
        path = fetch(entry, args.cache_dir, progress=True)
        print(f"{entry.name}: {path}")
        return 0
    if args.json:
        cache = weights_dir(args.cache_dir)
        for w in list_published():
            cached = cached_file(w, args.cache_dir)
            print(
                json.dumps(
                    {
                        "name": w.name,
                        "model": w.model,
                        "weights": w.tag,
                        "url": w.url,
                        "file": w.file,
                        "sha256_prefix": w.sha256_prefix,
                        "acc1": w.acc1,
                        "acc5": w.acc5,
                        "params": w.params,
                        "size_mb": w.size_mb,
                        "resize": w.resize,
                        "options": w.options,
                        "cached": str(cached) if cached else None,
                        "cache_dir": str(cache),
                    }
                )
            )
        for t in list_shipped():
            print(
                json.dumps(
                    {
                        "name": t.name,
                        "model": t.model,
                        "weights": t.tag,
                        "file": str(t.path),
                        "sha256": t.sha256,
                        "val_error": t.val_error,
                        "val_error_single": t.val_error_single,
                        "data": t.data,
                        "model_card": str(t.card),
                        "shipped": True,
                    }
                )
            )
        return 0
    print(_table(args.cache_dir))
    return 0


def _table(cache_dir: str | Path | None = None) -> str:
    """Plain-text table: name, file, acc@1, acc@5, size, cached (files are not hashed here)."""
    cache = weights_dir(cache_dir)
    rows = [("model", "weights", "file", "acc@1", "acc@5", "size", "cached")]
    for w in list_published():
        rows.append(
            (
                w.model,
                w.tag,
                w.file,
                f"{w.acc1:.3f}",
                f"{w.acc5:.3f}",
                f"{w.size_mb:.1f} MB",
                _where(cached_file(w, cache_dir), cache),
            )
        )
    shipped = [("model", "weights", "val err (flip)", "val err (single view)", "trained on")]
    shipped += [(t.model, t.tag, f"{t.val_error:.2f}%", f"{t.val_error_single:.2f}%", t.data) for t in list_shipped()]
    return "\n".join(
        [
            f"weights cache: {cache}",
            *_aligned(rows),
            "acc@1/acc@5: ImageNet-1k val accuracy (%) of a centre 224 crop, as torchvision publishes "
            "it. Use: create_model(MODEL, weights=WEIGHTS), --weights WEIGHTS, "
            "`resnet weights download MODEL.WEIGHTS`.",
            "",
            "trained by this project and shipped in the package (model cards: resnet/weights/trained/*.md):",
            *_aligned(shipped),
            "Use: create_model(MODEL, weights=WEIGHTS), or MODEL.WEIGHTS wherever a run or checkpoint is "
            "accepted (resnet eval/predict/export, --init).",
        ]
    )


def _aligned(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _where(path: Path | None, cache: Path) -> str:
    if path is None:
        return "-"
    return "yes" if path.parent == cache else f"torch.hub: {path}"
