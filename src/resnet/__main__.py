"""``python -m resnet``: the same as the ``resnet`` command (and what torchrun launches)."""

from resnet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
