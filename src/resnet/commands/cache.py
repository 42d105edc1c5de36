"""``resnet cache list|clear``: what the decoded-image cache folder holds, and removing entries of it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from resnet.data.cache import default_cache_dir
from resnet.data.cache_entries import CacheEntry, list_entries, remove, select
from resnet.errors import ResNetError
from resnet.markdown import markdown_table

DESCRIPTION = (
    "The cache folder holds image folders decoded once (small images) and mean "
    "images of training sets. Folder: --cache-dir, else $RESNET_CACHE, else "
    "$XDG_CACHE_HOME/resnet, else ~/.cache/resnet. Downloaded datasets there are not touched."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list",
        help="every entry: key, kind, size, images, date, source folder",
        description="Every entry of the cache: key, kind, size, images, date and source folder.",
    )
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    clear = actions.add_parser(
        "clear",
        help="remove entries: --all, or the KEYs shown by `resnet cache list`",
        description="Remove cache entries; they are rebuilt when next needed.",
    )
    clear.add_argument("keys", nargs="*", metavar="KEY", help="entry keys (or unique prefixes of 4+ characters)")
    clear.add_argument("--all", action="store_true", help="remove every entry")
    for q in (ls, clear):
        q.add_argument(
            "--cache-dir",
            default=None,
            metavar="DIR",
            help="the cache folder (default: $RESNET_CACHE, else $XDG_CACHE_HOME/resnet or ~/.cache/resnet)",
        )


def run(args: argparse.Namespace) -> int:
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    entries = list_entries(cache_dir)
    if args.action == "list":
        _print_entries(entries, cache_dir, as_json=args.json)
        return 0
    if args.all == bool(args.keys):
        raise ResNetError("resnet cache clear: give --all or the KEYs of entries to remove (see `resnet cache list`)")
    chosen = entries if args.all else select(entries, args.keys)
    freed = remove(chosen)
    print(f"removed {_entries(len(chosen))} ({_size(freed)}) from {cache_dir}")
    return 0


def _print_entries(entries: list[CacheEntry], cache_dir: Path, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "key": e.key,
                        "kind": e.kind,
                        "bytes": e.size,
                        "images": e.images,
                        "source": e.source,
                        "created": e.created,
                        "complete": e.complete,
                        "files": [str(p) for p in e.files],
                    }
                    for e in entries
                ],
                indent=1,
            )
        )
        return
    if not entries:
        print(f"the cache {cache_dir} is empty")
        return
    rows = [["key", "kind", "size", "images", "created (UTC)", "source"]]
    for e in entries:
        source = e.source or "unknown (older entry)"
        rows.append(
            [
                e.key,
                e.kind if e.complete else f"{e.kind} (incomplete)",
                _size(e.size),
                "" if e.images is None else str(e.images),
                e.created.replace("T", " ").rstrip("Z"),
                source,
            ]
        )
    print(markdown_table(rows))
    print(f"{_entries(len(entries))}, {_size(sum(e.size for e in entries))} in {cache_dir}")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"
