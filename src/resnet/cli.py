"""The ``resnet`` command: the table of subcommands, each a module of :mod:`resnet.commands`."""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any, NamedTuple, TypeVar, overload

from resnet import __version__
from resnet.errors import ResNetError

_N = TypeVar("_N")  # a namespace object given to parse_args


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _option_hint(word: str, options: Sequence[str]) -> str:
    """The closest long options to a mistyped ``--word``, compared without the dashes they all share."""
    names = {o[2:]: o for o in options if o.startswith("--") and o != "--help"}
    close = difflib.get_close_matches(word.lstrip("-"), list(names), n=2)
    return f" (did you mean {', '.join(names[c] for c in close)}?)" if close else ""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: no usage dump, and a did-you-mean for wrong choices and options.

    Subcommand parsers are of the same class (argparse creates them with ``type(parent)``).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see `{self.prog} --help`)\n")

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            raise argparse.ArgumentError(
                action,
                f"invalid choice {value!r}{_did_you_mean(str(value), choices)}; choose from {', '.join(choices)}",
            )

    # The overloads of argparse's own: with a ``namespace``, that object is filled and returned.
    @overload
    def parse_args(self, args: Iterable[str] | None = None, namespace: None = None) -> argparse.Namespace: ...
    @overload
    def parse_args(self, args: Iterable[str] | None, namespace: _N) -> _N: ...
    @overload
    def parse_args(self, *, namespace: _N) -> _N: ...

    def parse_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            leaf = _chosen_parser(self, parsed)
            unknown = next((e for e in extras if e.startswith("-")), None)
            hint = _option_hint(unknown.split("=")[0], list(leaf._option_string_actions)) if unknown else ""
            leaf.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost subcommand parser that ``args`` went through (``resnet analyze gradients``)."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, sub.dest, None) if sub is not None else None
        if sub is None or chosen not in sub.choices:
            return parser
        parser = sub.choices[chosen]


class Command(NamedTuple):
    """A row of the table: what `resnet --help` lists, and the module that has the rest."""

    name: str
    help: str  # the line in `resnet --help`
    module: str  # DESCRIPTION, add_arguments(parser), run(args) -> int


COMMANDS: tuple[Command, ...] = (
    Command(
        "summary",
        "per-stage output sizes, blocks, parameters and multiply-adds of a network",
        "resnet.commands.summary",
    ),
    Command(
        "train",
        "train a network with the paper's recipes (no arguments: the embedded digits job)",
        "resnet.commands.train",
    ),
    Command("eval", "top-1/top-5 error of a checkpoint", "resnet.commands.evaluate"),
    Command("predict", "top-5 classes of image files or folders", "resnet.commands.predict"),
    Command(
        "experiment",
        "the paper's experiments: degradation (Fig. 6, Table 6), shortcut options",
        "resnet.commands.experiment",
    ),
    Command("analyze", "layer responses (Fig. 7) and gradient flow", "resnet.commands.analyze"),
    Command("report", "one self-contained HTML page (and Markdown) for run folders", "resnet.commands.report"),
    Command(
        "export", "export a checkpoint to TorchScript or ONNX, checked against eager PyTorch", "resnet.commands.export"
    ),
    Command(
        "bench",
        "training and inference images/s: this project's fast path vs an eager baseline, side by side",
        "resnet.commands.bench",
    ),
    Command("weights", "published pretrained weights: list them, download one", "resnet.commands.weights"),
    Command("cache", "list or clear the decoded-image cache", "resnet.commands.cache"),
)
_MODULES = {c.name: c.module for c in COMMANDS}


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(_MODULES[name])


class _Subcommands(argparse._SubParsersAction):
    """The subcommands' parsers, each given its options by its module when it is chosen: `resnet --help`
    imports no command module, and so no torch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._complete: set[str] = set()  # the subcommands whose module has added their options

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name = values[0]  # a valid choice: argparse checked it before calling
        if name not in self._complete:
            module, chosen = _command_module(name), self._name_parser_map[name]
            chosen.description = module.DESCRIPTION
            module.add_arguments(chosen)
            self._complete.add(name)
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    """The `resnet` parser; a subcommand's parser gets its options from its module when it parses."""
    parser = Parser(
        prog="resnet",
        description="Deep Residual Learning for Image Recognition (He et al. 2015): the paper's "
        "networks, recipes and experiments.",
    )
    parser.add_argument("--version", action="version", version=f"resnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", action=_Subcommands)
    for command in COMMANDS:
        sub.add_parser(command.name, help=command.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()  # a --time-limit counts from here (importing torch is in it)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started = started
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _command_module(args.command).run(args)
    except ResNetError as e:
        print(f"resnet: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnet: interrupted", file=sys.stderr)
        return 130
