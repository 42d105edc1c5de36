"""Training and inference speed of the fast path vs baselines: ``resnet bench`` as a script.

    python benchmarks/bench_speed.py                 # the table (same options as `resnet bench`)
    python benchmarks/bench_speed.py --json > out.json

See src/resnet/bench.py for what is measured and how; results go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from resnet.commands.bench import add_arguments, run
from resnet.errors import ResNetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return run(args)
    except ResNetError as e:
        print(f"bench_speed: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
