"""The ``resnet`` command: one subcommand per job, each a thin wrapper over the library."""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from resnet import __version__
from resnet.errors import ResNetError
from resnet.option_types import (channels_int, classes_int, depth_int, float_range, image_side, int_range, positive_int,
                                 seed_int, val_split_value)


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
            raise argparse.ArgumentError(action, f"invalid choice {value!r}{_did_you_mean(str(value), choices)}; "
                                                 f"choose from {', '.join(choices)}")

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
                   ) -> argparse.Namespace:  # type: ignore[override]
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


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand's runner, imported only when it runs, so `resnet --help` stays instant."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)

    return run


def _checkpoint_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file (.safetensors) or run folder (its best checkpoint, else its last)")


def _weights_argument(p: argparse.ArgumentParser, positional: str = "") -> None:
    then = f"; {positional} is then a model name, e.g. resnet50" if positional else ""
    p.add_argument("--weights", default=None, metavar="WEIGHTS",
                   help="pretrained weights: torchvision, torchvision-v2 (published ImageNet weights, downloaded "
                   f"once; see `resnet weights`) or a .pth/.safetensors file{then}")


def _device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps (default: auto)")


def _quiet_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when stderr is "
                   "not a terminal)")


def _add_summary(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "summary",
        help="per-stage output sizes, blocks, parameters and multiply-adds of a network",
        description="Print the paper's Table 1 view of a network: each stage's output size, its "
        "blocks, parameters and multiply-adds (convolutions and fully connected layers).",
    )
    p.add_argument("model", nargs="?", help=f"network name (see `resnet summary --all`), e.g. resnet50, resnet56, plain20")
    p.add_argument("--input-size", type=image_side, nargs="+", metavar="N", default=None,
                   help="input height [width] in pixels (default: 224 for ImageNet nets, 32 for CIFAR nets)")
    p.add_argument("--num-classes", type=classes_int, default=None, help="classifier outputs (default: the family's)")
    p.add_argument("--shortcut", choices=["A", "B", "C"], default=None, help="shortcut option (default: the family's)")
    p.add_argument("--stride-on", choices=["1x1", "3x3"], default=None,
                   help="where a downsampling bottleneck puts its stride (default: 1x1, the paper's)")
    p.add_argument("--depth", type=depth_int, default=None, help="depth, for the generic builders cifar_resnet/cifar_plain (6n+2)")
    p.add_argument("--in-channels", type=channels_int, default=None, help="input channels (default: 3)")
    _weights_argument(p)
    p.add_argument("--output-stride", type=int, choices=[32, 16, 8], default=None,
                   help="dilate the last stage (16) or two (8) instead of striding, as DeepLab does (ImageNet nets)")
    p.add_argument("--features", action="store_true",
                   help="the feature maps a detector or segmenter takes: stage, channels, stride, output size")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--table1", action="store_true", help="the paper's Table 1 for the whole ImageNet family")
    p.add_argument("--all", action="store_true", help="a Markdown table of every network: parameters and multiply-adds")
    p.set_defaults(func=_lazy("resnet.analysis.complexity", "run_summary_command"))
    return p


def _add_train(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from resnet.train.command import add_train_arguments

    p = sub.add_parser(
        "train",
        help="train a network with the paper's recipes (no arguments: the embedded digits job)",
        description="Train a network. With no arguments: ResNet-20 on the 1,797 scikit-learn digits "
        "(330 iterations; 13 s from command to prompt on 2 idle AMD EPYC cores). Options resolve as: "
        "defaults -> --recipe -> --config FILE -> "
        "flags. --batch-size is the global batch (summed over all processes of a DDP run, the LR is for "
        "it); run many processes with --nproc N or `torchrun --nproc-per-node N -m resnet train ...`.",
    )
    add_train_arguments(p)
    p.set_defaults(func=_lazy("resnet.train.command", "run_train"))
    return p


def _add_eval(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "eval",
        help="top-1/top-5 error of a checkpoint",
        description="Top-1 and top-5 error of a checkpoint (or a run folder: its best checkpoint) on a "
        "dataset. The data, split and normalisation default to the ones it was trained with. Another "
        "--data-dir is read with its own structure (val/, train/, or every image with --split all), its "
        "class folders matched to the checkpoint's classes by name (a subset is fine). The test views "
        "follow the network's input size: ImageNet crops for networks trained on image files, the "
        "network's own size (e.g. 32x32) for ones trained on small images.",
    )
    _checkpoint_argument(p)
    p.add_argument("--data", default=None, help="dataset (default: the one it was trained on; an image folder "
                   "for a --data-dir of class folders)")
    p.add_argument("--data-dir", default=None, help="dataset folder (default: the one it was trained on)")
    p.add_argument("--split", choices=["val", "test", "train", "all"], default="val",
                   help="which split to evaluate (default: val; test where the source has one, e.g. CIFAR; "
                   "all: every image of the data, e.g. a separate test folder)")
    views = p.add_mutually_exclusive_group()
    views.add_argument("--ten-crop", action="store_true", help="average 10 crops: 4 corners, centre, and flips "
                       "(224 crops of the image resized to 256; for small-image networks, crops at their size of "
                       "the image padded by 4 pixels)")
    views.add_argument("--multi-scale", action="store_true",
                       help="fully convolutional, scores averaged over shorter sides 224, 256, 384, 480, 640 "
                       "(ImageNet-style networks only)")
    views.add_argument("--center", action="store_true", help="resize 256, centre 224 crop (small-image networks: "
                       "shorter side resized to their size, centre crop)")
    views.add_argument("--flip", action="store_true", help="average the single view and its mirror image "
                       "(beyond the paper)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="images per forward pass (default: 100)")
    _device_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _quiet_argument(p)
    p.set_defaults(func=_lazy("resnet.evaluate", "run_eval_command"))
    return p


def _add_predict(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict",
        help="top-5 classes of image files or folders",
        description="Classify image files with a checkpoint (or a run folder): the top classes with "
        "their names and probabilities. A folder stands for every image in it and its subfolders.",
    )
    _checkpoint_argument(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images (searched recursively)")
    p.add_argument("--top", type=positive_int, default=5, help="classes to show per image (default: 5)")
    _weights_argument(p, "CHECKPOINT")
    p.add_argument("--csv", metavar="FILE", default=None,
                   help="also write one row per image: image, class_1, probability_1, ..., class_k, probability_k")
    _device_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON: one object per image")
    p.set_defaults(func=_lazy("resnet.predict", "run_predict_command"))
    return p


def _data_arguments(p: argparse.ArgumentParser, default: str = "cifar10") -> None:
    p.add_argument("--data", default=default, help=f"dataset: digits, cifar10, cifar100, imagefolder (default: {default})")
    p.add_argument("--data-dir", default=None, help="dataset folder (not needed for digits)")
    _device_argument(p)


def _add_experiment(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("experiment", help="the paper's experiments: degradation (Fig. 6, Table 6), shortcut options",
                       description="Train the runs of one of the paper's experiments (resumable: run the same "
                       "command again to continue) and write its figures, tables and report into --out.")
    kinds = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, help_text in (("degradation", "plain vs residual CIFAR nets at several depths: Figure 6, Table 6"),
                            ("shortcuts", "shortcut options A, B, C on one network (the idea of Table 3)")):
        e = kinds.add_parser(name, help=help_text, description=help_text)
        _data_arguments(e)
        if name == "degradation":
            e.add_argument("--depths", default=None, help="comma-separated depths 6n+2 (default: 20,56; with "
                           "--medium 20,32,44,56; the paper: 20,32,44,56,110)")
            e.add_argument("--nets", default="plain,resnet", help="which half of Figure 6 to train: plain, "
                           "resnet or plain,resnet (default), e.g. --nets resnet to repeat the residual half "
                           "with another --seed at half the cost")
            modes = e.add_mutually_exclusive_group()
            modes.add_argument("--quick", action="store_true", help="short schedule for a laptop CPU: 640 "
                               "iterations on 2,500 training images, depths 20 and 56 (see README)")
            modes.add_argument("--medium", action="store_true", help="the quick schedule at depths 20, 32, 44 "
                               "and 56: about twice the time")
        else:
            e.add_argument("--model", default="resnet20", help="residual network (default: resnet20)")
            e.add_argument("--options", default="A,B,C", help="shortcut options to compare (default: A,B,C)")
            e.add_argument("--quick", action="store_true", help="500 iterations: a pipeline check (see README)")
        e.add_argument("--iterations", type=positive_int, default=None, help="training length of every run (milestones scale)")
        e.add_argument("--seed", type=seed_int, default=0, help="seed of every run (default: 0)")
        e.add_argument("--out", default=None, help=f"output folder (default: experiments/{name})")
        e.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                       help="any `resnet train` option for every run, e.g. --set batch_size=64 (repeatable)")
        e.add_argument("--quiet", action="store_true", help="no progress bars")
        e.add_argument("--jobs", type=positive_int, default=1, help="CPU runs trained side by side, each with "
                       "its share of the threads (default: 1; see README for when it pays)")
        e.set_defaults(func=_lazy("resnet.experiments", "run_experiment_command"))
    return p


def _add_analyze(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("analyze", help="layer responses (Fig. 7) and gradient flow",
                       description="Measure what the paper argues: layer responses of trained networks, and "
                       "per-layer gradient norms of plain and residual networks.")
    kinds = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    r = kinds.add_parser("responses", help="std of each 3x3 layer's output (after BN, before ReLU/addition)",
                         description="The paper's Figure 7 for trained runs or checkpoints, on their validation "
                         "images: in layer order and sorted by magnitude.")
    r.add_argument("sources", nargs="+", metavar="RUN_OR_CHECKPOINT", help="run folders or checkpoint files")
    r.add_argument("--data", default=None, help="dataset (default: the one each run was trained on)")
    r.add_argument("--data-dir", default=None, help="dataset folder (default: the run's)")
    r.add_argument("--split", choices=["val", "test", "train"], default="val", help="images to use (default: val)")
    r.add_argument("--images", type=positive_int, default=1000, help="how many images (default: 1000)")
    r.add_argument("--batch-size", type=positive_int, default=200, help="images per forward pass (default: 200)")
    _device_argument(r)
    r.add_argument("--out", default="analysis", help="output folder (default: analysis)")
    _quiet_argument(r)
    r.set_defaults(func=_lazy("resnet.analysis.commands", "run_responses_command"))
    g = kinds.add_parser("gradients", help="per-layer gradient norms at initialisation and after k steps",
                         description="Gradient norm of each convolution weight, input to output, for each "
                         "network, on one fixed validation batch: at initialisation and after --steps SGD steps.")
    g.add_argument("models", nargs="+", metavar="MODEL", help="network names, e.g. plain20 resnet20 plain56 resnet56")
    _data_arguments(g, default="digits")
    g.add_argument("--val-split", type=val_split_value, default=0.2, help="held-out fraction or count (default: 0.2)")
    g.add_argument("--steps", type=int_range(0), default=50, help="SGD steps before the second measurement (default: 50)")
    g.add_argument("--batch-size", type=positive_int, default=128, help="batch size (default: 128)")
    g.add_argument("--lr", type=float_range(0.0), default=0.1, help="SGD learning rate of the steps (default: 0.1)")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of initialisation and data order (default: 0)")
    g.add_argument("--out", default="analysis", help="output folder (default: analysis)")
    _quiet_argument(g)
    g.set_defaults(func=_lazy("resnet.analysis.commands", "run_gradients_command"))
    return p


def _add_report(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="one self-contained HTML page (and Markdown) for run folders",
                       description="Config, curves, tables and final numbers of the given runs, as report.html "
                       "(figures embedded, viewable offline) and report.md with PNGs beside it.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.add_argument("--title", default="ResNet runs", help="page title")
    p.set_defaults(func=_lazy("resnet.report", "run_report_command"))
    return p


def _add_export(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to TorchScript or ONNX, checked against eager PyTorch",
        description="Write a trained network (BatchNorm folded into the convolutions, any batch size) as "
        "TorchScript or ONNX. The export is compared with eager PyTorch on random inputs and removed "
        "again if they differ beyond float tolerance. ONNX needs `pip install 'resnet[export]'`.",
    )
    _checkpoint_argument(p)
    p.add_argument("--format", choices=["torchscript", "onnx"], required=True, help="what to write")
    p.add_argument("--output", default=None,
                   help="file to write (default: beside the checkpoint, .pt for TorchScript, .onnx for ONNX; "
                   "with --weights: MODEL.WEIGHTS.pt/.onnx here)")
    p.add_argument("--input-size", type=image_side, nargs="+", metavar="N", default=None,
                   help="input height [width] used for the check (default: the checkpoint's image size)")
    p.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers separate in the export")
    _weights_argument(p, "CHECKPOINT")
    p.set_defaults(func=_lazy("resnet.export", "run_export_command"))
    return p


def _add_bench(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench",
        help="training and inference images/s: this project's fast path vs an eager baseline, side by side",
        description="Measure training and inference images/s of resnet20 (32x32) and resnet50 (224x224) on "
        "this machine: the fast path against the same network in plain eager fp32 NCHW (and torchvision's "
        "resnet50 with AMP, ONNX Runtime, where installed), interleaved in one run, medians after warm-up.",
    )
    from resnet.bench import add_arguments

    add_arguments(p)
    p.set_defaults(func=_lazy("resnet.bench", "run_bench_command"))
    return p


def _add_cache(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("cache", help="list or clear the decoded-image cache",
                       description="The cache folder holds image folders decoded once (small images) and mean "
                       "images of training sets. Folder: --cache-dir, else $RESNET_CACHE, else "
                       "$XDG_CACHE_HOME/resnet, else ~/.cache/resnet. Downloaded datasets there are not touched.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="every entry: key, kind, size, images, date, source folder",
                            description="Every entry of the cache: key, kind, size, images, date and source folder.")
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    clear = actions.add_parser("clear", help="remove entries: --all, or the KEYs shown by `resnet cache list`",
                               description="Remove cache entries; they are rebuilt when next needed.")
    clear.add_argument("keys", nargs="*", metavar="KEY", help="entry keys (or unique prefixes of 4+ characters)")
    clear.add_argument("--all", action="store_true", help="remove every entry")
    for q in (ls, clear):
        q.add_argument("--cache-dir", default=None, metavar="DIR",
                       help="the cache folder (default: $RESNET_CACHE, else $XDG_CACHE_HOME/resnet or ~/.cache/resnet)")
        q.set_defaults(func=_lazy("resnet.data.cache_admin", "run_cache_command"))
    return p


def _add_weights(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("weights", help="published pretrained weights: list them, download one",
                       description="torchvision's published ImageNet weights for this project's networks: "
                       "accuracy, file, size and whether they are cached. `resnet weights download NAME` "
                       "fetches one (resumable, checked against the SHA-256 prefix in its file name).")
    cache_help = "cache root (default: $RESNET_CACHE, else ~/.cache/resnet); files go to its weights/"
    p.add_argument("--cache-dir", default=None, help=cache_help)
    p.add_argument("--json", action="store_true", help="list as JSON, one object per line")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="what is published and what is cached (the default)")
    d = actions.add_parser("download", help="download one file into the cache")
    d.add_argument("name", metavar="NAME", help="MODEL.WEIGHTS as listed, e.g. resnet50.torchvision-v2")
    # SUPPRESS: given before or after ACTION, without the subcommand's default hiding the other.
    d.add_argument("--cache-dir", default=argparse.SUPPRESS, help=cache_help)
    p.set_defaults(func=_lazy("resnet.weights.command", "run_weights_command"), action="list")
    return p


COMMANDS: list[Callable[[argparse._SubParsersAction], argparse.ArgumentParser]] = [
    _add_summary,
    _add_train,
    _add_eval,
    _add_predict,
    _add_experiment,
    _add_analyze,
    _add_report,
    _add_export,
    _add_bench,
    _add_weights,
    _add_cache,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="resnet",
        description="Deep Residual Learning for Image Recognition (He et al. 2015): the paper's "
        "networks, recipes and experiments.",
    )
    parser.add_argument("--version", action="version", version=f"resnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ResNetError as e:
        print(f"resnet: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnet: interrupted", file=sys.stderr)
        return 130
