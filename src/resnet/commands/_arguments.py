"""Options that several subcommands share, worded in one place."""

from __future__ import annotations

import argparse

from resnet.errors import ResNetError


def checkpoint_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint", help="checkpoint file (.safetensors) or run folder (its best checkpoint, else its last)"
    )


def weights_argument(p: argparse.ArgumentParser, positional: str = "") -> None:
    then = f"; {positional} is then a model name, e.g. resnet50" if positional else ""
    p.add_argument(
        "--weights",
        default=None,
        metavar="WEIGHTS",
        help="pretrained weights: torchvision, torchvision-v2 (published ImageNet weights, downloaded "
        f"once; see `resnet weights`) or a .pth/.safetensors file (with its config.json beside it, as timm "
        f"and the Hugging Face Hub publish it: its network, classes, normalisation and test view){then}",
    )


def normalization_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--normalization",
        choices=["imagenet"],
        default=None,
        help="the input normalisation of --weights: imagenet is torchvision's mean and std (timm's default "
        "too); needed for a bare .pth/.safetensors file, which does not say it (no config.json beside it)",
    )


def normalization_needs_weights(args: argparse.Namespace) -> None:
    """--normalization is for --weights: a checkpoint carries its own."""
    if args.normalization and not args.weights:
        raise ResNetError("option 'normalization' is for --weights; a checkpoint carries its own normalisation")


def device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps (default: auto)")


def quiet_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quiet", action="store_true", help="no progress bars (they are off anyway when stderr is not a terminal)"
    )


def data_arguments(p: argparse.ArgumentParser, default: str = "cifar10") -> None:
    p.add_argument(
        "--data", default=default, help=f"dataset: digits, cifar10, cifar100, imagefolder (default: {default})"
    )
    p.add_argument("--data-dir", default=None, help="dataset folder (not needed for digits)")
    device_argument(p)
