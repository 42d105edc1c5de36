"""``resnet train``'s flags, one per :class:`~resnet.train.config.TrainConfig` field, and back again.

:func:`add_arguments` makes the flags (help text with the default and each recipe's value);
:func:`given_options` reads the ones given; :func:`flags` writes them out again for the processes
torchrun starts.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from resnet.train.config import TrainConfig, base_type, field_names
from resnet.train.recipes import RECIPES


def _default_text(name: str) -> str:
    base = TrainConfig().to_dict()[name]

    def show(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return ",".join(f"{x:g}" for x in v)
        if isinstance(v, float) and v.is_integer() and v >= 1:
            return str(int(v))  # counts such as --val-split 5000
        return "none" if v is None else str(v)

    parts = [f"default: {show(base)}"]
    for recipe, changes in RECIPES.items():
        if name in changes and show(changes[name]) != show(base):
            parts.append(f"{recipe}: {show(changes[name])}")
    return "; ".join(parts)


_METAVARS = {
    "model": "NAME",
    "data_dir": "DIR",
    "cache_dir": "DIR",
    "run_dir": "DIR",
    "runs_root": "DIR",
    "device": "DEVICE",
    "init": "WEIGHTS",
    "freeze_until": "STAGE",
    "head_lr": "LR",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per config field; unset flags stay absent so recipes and files can fill them."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(TrainConfig):
        group_name = f.metadata["group"]
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(f"{group_name} options")
        g = groups[group_name]
        flag = "--" + f.name.replace("_", "-")
        default = _default_text(f.name)
        # Options whose help already says what their default is ("default: the family's") need no "none".
        text = (
            f.metadata["help"]
            if "(default:" in f.metadata["help"] and default == "default: none"
            else f"{f.metadata['help']} ({default})"
        )
        help = text.replace("%", "%%")
        kind = base_type(f.name)
        kw: dict[str, Any] = dict(default=argparse.SUPPRESS, help=help, dest=f.name)
        if f.name == "recipe":
            kw["choices"] = list(RECIPES)
        elif f.metadata["choices"]:
            kw["choices"] = list(f.metadata["choices"])
        if kind is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif kind is tuple:
            g.add_argument(flag, metavar="F,F,...", **kw)
        else:
            metavar = None if kw.get("choices") else _METAVARS.get(f.name) or {int: "N", float: "X"}.get(kind, "VALUE")
            g.add_argument(flag, metavar=metavar, **kw)


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The config options present on the command line."""
    names = set(field_names())
    return {k: v for k, v in vars(args).items() if k in names}


def flags(given: dict[str, Any]) -> list[str]:
    """Command-line flags that reproduce ``given`` (for the processes torchrun starts)."""
    out = []
    for name, value in given.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return out
