"""``resnet report RUN_DIR...``: one self-contained HTML page and a Markdown twin for a set of runs."""

from __future__ import annotations

import argparse

from resnet.report import write_report

DESCRIPTION = (
    "Config, curves, tables and final numbers of the given runs, as report.html "
    "(figures embedded, viewable offline) and report.md with PNGs beside it."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.add_argument("--title", default="ResNet runs", help="page title")


def run(args: argparse.Namespace) -> int:
    html_path, md_path = write_report(args.runs, args.out, title=args.title)
    print(f"report: {html_path}\nmarkdown: {md_path}")
    return 0
