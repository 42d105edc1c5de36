"""``resnet weights``: what published weights there are and which are cached; ``download NAME`` fetches one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from resnet.weights.fetch import cached_file, fetch, weights_dir
from resnet.weights.published import find_by_name, list_published


def _where(path: Path | None, cache: Path) -> str:
    if path is None:
        return "-"
    return "yes" if path.parent == cache else f"torch.hub: {path}"


def weights_table(cache_dir: str | Path | None = None) -> str:
    """Plain-text table: name, file, acc@1, acc@5, size, cached (files are not hashed here)."""
    cache = weights_dir(cache_dir)
    rows = [("model", "weights", "file", "acc@1", "acc@5", "size", "cached")]
    for w in list_published():
        rows.append((w.model, w.tag, w.file, f"{w.acc1:.3f}", f"{w.acc5:.3f}", f"{w.size_mb:.1f} MB",
                     _where(cached_file(w, cache_dir), cache)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([f"weights cache: {cache}", *lines,
                      "acc@1/acc@5: ImageNet-1k val accuracy (%) of a centre 224 crop, as torchvision publishes "
                      "it. Use: create_model(MODEL, weights=WEIGHTS), --weights WEIGHTS, "
                      "`resnet weights download MODEL.WEIGHTS`."])


def run_weights_command(args: argparse.Namespace) -> int:
    if args.action == "download":
        entry = find_by_name(args.name)
        path = fetch(entry, args.cache_dir, progress=True)
        print(f"{entry.name}: {path}")
        return 0
    if args.json:
        cache = weights_dir(args.cache_dir)
        for w in list_published():
            cached = cached_file(w, args.cache_dir)
            print(json.dumps({"name": w.name, "model": w.model, "weights": w.tag, "url": w.url, "file": w.file,
                              "sha256_prefix": w.sha256_prefix, "acc1": w.acc1, "acc5": w.acc5,
                              "params": w.params, "size_mb": w.size_mb, "resize": w.resize,
                              "options": w.options, "cached": str(cached) if cached else None,
                              "cache_dir": str(cache)}))
        return 0
    print(weights_table(args.cache_dir))
    return 0
