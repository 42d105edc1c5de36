"""The paper's experiments: degradation (Fig. 6 + Table 6) and shortcut options (Table 3).

Each experiment is a set of ordinary run folders under one output folder, trained with the paper's
recipe through :func:`resnet.train.train`. Running the same command again continues where it
stopped: finished runs are read back, interrupted ones resume from their last checkpoint, and only
missing ones start. The quick and medium modes of the degradation experiment shorten the schedule
(milestones scale with it) so that it fits a laptop CPU; the tables say which mode produced them.
"""

from __future__ import annotations

import bisect
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from resnet.errors import ResNetError
from resnet.markdown import markdown_table
from resnet.models import get_spec, list_models, model_family

logger = logging.getLogger(__name__)

# Table 6: CIFAR-10 *test* error (%) of the paper's ResNets (110: best of 5 runs; mean 6.61).
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
# Table 3: ImageNet top-1 error (%), 10-crop, of ResNet-34 with options A/B/C.
PAPER_TABLE3 = {"A": 25.03, "B": 24.52, "C": 24.19}

# The degradation experiment's short modes. Degradation is a statement about optimisation (training
# error), so they keep what decides it: the paper's networks, batch 128, momentum 0.9, weight decay
# 1e-4, LR /10 at 50% and 75% of the run, one schedule for every network. What changes (docs/experiments.md, "The
# paper's experiments", with what it measured): 640 iterations on a seeded 2,500-image part of the 45k
# training images (34 epochs of it; the 5,000 validation images are the recipe's own), without
# augmentation, so that training error measures how well each network fits a fixed set of images; LR
# 0.02 instead of 0.1, since at 0.1 ResNet-56 spends the short run behind ResNet-20 (by 12 to 14 points
# after the first drop with seeds 1 and 2) while at 0.02 it is level by step 220, and at 0.05 ResNet-20
# fits all but a few images from step 400 on, leaving nothing to compare; a 100-step linear warm-up for
# every network, kept from the LR 0.1 schedule (where ResNet-56 collapses without it; at 0.02 it does
# not, but the measured tables are with it); and the speed options (bf16 only on CPUs that have it
# natively), which change nothing but rounding.
SHORT_SCHEDULE = {
    "iterations": 640,
    "train_subset": 2500,
    "augment": "none",
    "lr": 0.02,
    "milestones": "0.5,0.75",
    "warmup_iterations": 100,
    "warm_rule": "off",
    "eval_every": 160,
    "log_every": 20,
    "precision": "native",
    "channels_last": "on",
}
MODES: dict[str, dict[str, Any]] = {"quick": SHORT_SCHEDULE, "medium": SHORT_SCHEDULE}
# With --time-limit: the paper's recipe (all 45k training images, its augmentation, LR 0.1 / 10 at 50%
# and 75%) on a length each run plans from its share of the time, with the speed options.
TIMED: dict[str, Any] = {"precision": "native", "channels_last": "on", "log_every": 50}
KINDS = {"plain": "plain", "resnet": "ResNet"}  # the two halves of Figure 6, and their labels
MODE_DEPTHS = {"quick": [20, 56], "medium": [20, 32, 44, 56], None: [20, 56]}
# The shortcuts experiment's quick mode stays a pipeline check: 500 iterations, the paper's warm rule.
SHORTCUTS_QUICK = {"iterations": 500, "eval_every": 125, "log_every": 25, "warm_rule": "on"}

# The recipes hold out the paper's 5,000 CIFAR images for validation; the embedded digits (1,797
# images) cannot spare that many, so experiments on them keep the digits recipe's 20% (and all of
# their 1,438 training images).
DATA_DEFAULTS: dict[str, dict[str, Any]] = {"digits": {"val_split": 0.2, "train_subset": None}}


@dataclass
class ExperimentResult:
    out_dir: Path
    runs: dict[str, Path]
    table: list[list[str]]
    figure: Path | None
    report: Path | None
    checks: list[list[str]] | None = None  # the degradation experiment's depth-order table


def _base_options(
    recipe: str, data_options: dict[str, Any], mode_options: dict[str, Any], overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """Recipe, then the mode, then what the data needs, then the user's --set/--iterations."""
    return {
        "recipe": recipe,
        **data_options,
        **mode_options,
        **DATA_DEFAULTS.get(data_options.get("data", ""), {}),
        **(overrides or {}),
    }


def _mode(mode: str | None, iterations: Any, recipe: str, subset: Any = None) -> str:
    """What schedule the runs had, for titles and table notes: only the recipe's own length is "full"."""
    from resnet.train.recipes import RECIPES

    if mode:
        return f"{mode} mode, {iterations} iterations" + (f" on {subset:,} training images" if subset else "")
    full = RECIPES[recipe]["iterations"]
    return "full schedule" if iterations == full else f"shortened schedule, {iterations} of {full} iterations"


def _timed_text(time_limit: float, loaded: dict[str, Any]) -> str:
    """What schedule time-limited runs had: each planned its own length in its share of the time."""
    lengths = sorted({run.summary.get("iterations", 0) for run in loaded.values()})
    span = f"{lengths[0]}" if len(lengths) == 1 else f"{lengths[0]} to {lengths[-1]}"
    return f"time limit {_duration(time_limit)}, {span} iterations a run"


def _finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file()


def _started(run_dir: Path) -> bool:
    """Finished, or with a checkpoint to resume from (run_or_resume's cases that take no new options)."""
    from resnet.checkpoints import LAST

    return _finished(run_dir) or (run_dir / LAST).is_file()


def run_or_resume(options: dict[str, Any], run_dir: Path) -> Path:
    """Train one run of an experiment, or continue it, or read it back if it already finished."""
    from resnet.checkpoints import LAST
    from resnet.train import resolve, train

    if _finished(run_dir):
        logger.info("%s: finished earlier, reusing it", run_dir)
        return run_dir
    if (run_dir / LAST).is_file():
        logger.info("%s: resuming from its last checkpoint", run_dir)
        train(resume=run_dir)
        return run_dir
    if run_dir.exists():
        # Started but stopped before its first checkpoint: nothing worth keeping, start it again.
        shutil.rmtree(run_dir)
    logger.info("%s: training %s", run_dir, options.get("model"))
    train(resolve({**options, "run_dir": str(run_dir)}))
    return run_dir


def _duration(seconds: float) -> str:
    """45 s, 3 min 20 s, 2 h 05 min."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


_clock = time.monotonic  # the experiment's clock (tests stand in for it)


@dataclass
class Plan:
    """The experiment's plan in the log: how many runs, which one is running ("run 2 of 4"), and after
    each run the ETA of the whole, from the time the trained runs took per unit of their cost."""

    jobs: Sequence[tuple[str, dict[str, Any], Path, float]]
    parallel: int = 1
    reused: set[str] = field(default_factory=set)  # finished earlier: read back, no time
    done: set[str] = field(default_factory=set)
    started_at: float = 0.0

    def __post_init__(self) -> None:
        self.reused = {key for key, _, run_dir, _ in self.jobs if _finished(run_dir)}
        self.started_at = _clock()

    def number(self, key: str) -> str:
        index = next(i for i, job in enumerate(self.jobs, 1) if job[0] == key)
        return f"run {index} of {len(self.jobs)}"

    def announce(self) -> None:
        names = ", ".join(key for key, _, _, _ in self.jobs)
        todo = len(self.jobs) - len(self.reused)
        earlier = f", {len(self.reused)} finished earlier and kept" if self.reused else ""
        at_a_time = f", {self.parallel} at a time" if self.parallel > 1 else ", one at a time"
        logger.info(
            "experiment: %d runs (%s)%s; %d to train%s; ETA after the first run",
            len(self.jobs),
            names,
            earlier,
            todo,
            at_a_time,
        )

    def start(self, key: str, run_dir: Path) -> None:
        logger.info("%s: %s (%s)", self.number(key), key, run_dir)

    def end(self, key: str) -> None:
        """``key`` has finished: the line with the time so far and the ETA of the rest."""
        self.done.add(key)
        elapsed = _clock() - self.started_at
        cost = {k: c for k, _, _, c in self.jobs if k not in self.reused}
        trained, left = sum(c for k, c in cost.items() if k in self.done), [k for k in cost if k not in self.done]
        if not left:
            logger.info(
                "%s done (%s): the experiment's runs are all done, in %s", self.number(key), key, _duration(elapsed)
            )
            return
        if key in self.reused or trained <= 0:
            logger.info("%s done (%s, finished earlier); %s left", self.number(key), key, _runs(len(left)))
            return
        remaining = elapsed / trained * sum(cost[k] for k in left)
        eta = (datetime.now(timezone.utc) + timedelta(seconds=remaining)).strftime("%H:%M UTC")
        logger.info(
            "%s done (%s), %s so far; %s left, about %s more (ETA %s)",
            self.number(key),
            key,
            _duration(elapsed),
            _runs(len(left)),
            _duration(remaining),
            eta,
        )


_COMMAND_PID: int | None = None  # in a side-by-side run's process: the experiment command's
_STOP: Any = None  # in a side-by-side run's process: set by the command when no further run may start


def _start_worker(parent_pid: int, stop: Any, threads: int, log_level: int) -> None:
    """A side-by-side run's process: its share of the cores, the command's log format, and a SIGTERM
    when the command ends, however it ends, so that its run stops at the next step with a checkpoint."""
    import signal

    import torch

    from resnet.train.distributed import die_with_parent

    global _COMMAND_PID, _STOP
    _COMMAND_PID, _STOP = parent_pid, stop
    die_with_parent(parent_pid, signum=signal.SIGTERM)
    torch.set_num_threads(threads)
    logging.basicConfig(level=log_level, format="%(message)s", stream=sys.stderr)


def _run_side_by_side(options: dict[str, Any], run_dir: Path, number: str | None = None) -> Path:
    from resnet.train.trainer import Interrupted

    if _STOP is not None and _STOP.is_set():  # handed over before the command was stopped
        raise Interrupted(f"{run_dir} not started")
    if number is not None:
        logger.info("%s: %s (%s)", number, run_dir.name, run_dir)
    try:
        return run_or_resume(options, run_dir)
    except Interrupted:
        # Stopped by Ctrl-C or SIGTERM. This process takes the next queued run at once, possibly before
        # the command has set the event, so it sets it itself: no queued run may start after a stop.
        if _STOP is not None:
            _STOP.set()
        raise
    finally:
        if _COMMAND_PID is not None and os.getppid() != _COMMAND_PID:
            os._exit(130)  # the command is gone and nobody waits for this result (its pool would hang)


def time_share(
    key: str, jobs: Sequence[tuple[str, dict[str, Any], Path, float]], done: set[str], left_s: float
) -> float:
    """The part of ``left_s`` seconds that the run ``key`` may take: in proportion to its cost among the runs
    not done yet (a run that ends early leaves its time to the others)."""
    costs = {k: c for k, _, _, c in jobs if k not in done}
    return left_s * costs[key] / sum(costs.values())


def run_all(
    jobs: Sequence[tuple[str, dict[str, Any], Path, float]], parallel: int = 1, time_limit: float | None = None
) -> dict[str, Path]:
    """Train, resume or reuse every ``(key, options, run_dir, cost)`` job; returns the run folders by key.

    ``time_limit``: seconds for all of them; each new run gets ``--time-limit`` its share of what is
    left when it starts (:func:`time_share`), and plans its own length in it (a resumed run keeps its
    plan). The costs are the runs' depths, about their step times, so the runs get about the same
    number of iterations.

    ``parallel`` > 1 trains that many runs side by side on the CPU, each in its own process with an equal
    share of the threads, the costliest first so that the processes finish together. It pays where one
    small network cannot use all the cores (``benchmarks/side_by_side.py`` measures it; on 2 cores it is
    about even). The runs are the same runs, trained one at a time or side by side; only their rounding
    can differ.
    """
    if parallel < 1:
        raise ResNetError(f"--jobs {parallel}: must be at least 1")
    if time_limit is not None and parallel > 1:
        raise ResNetError("--time-limit shares the time between runs trained one at a time; drop --jobs")
    plan = Plan(jobs, parallel if len(jobs) > 1 else 1)
    plan.announce()
    if parallel == 1 or len(jobs) == 1:
        runs = {}
        for key, options, run_dir, _ in jobs:
            plan.start(key, run_dir)
            if time_limit is not None and not _started(run_dir):  # a resumed run keeps its own plan
                left = time_limit - (_clock() - plan.started_at)
                if left <= 0:
                    raise ResNetError(
                        f"--time-limit {_duration(time_limit)}: the experiment's time is spent before {key} "
                        f"(its runs so far took {_duration(_clock() - plan.started_at)}); give a longer limit "
                        "and run the same command again: finished runs are kept"
                    )
                share = time_share(key, jobs, plan.done | plan.reused, left)
                logger.info("%s: %s of the %s left", key, _duration(share), _duration(left))
                options = {**options, "time_limit": share}
            runs[key] = run_or_resume(options, run_dir)
            plan.end(key)
        return runs
    import torch

    if torch.cuda.is_available() and any(options.get("device") != "cpu" for _, options, _, _ in jobs):
        # --jobs splits CPU threads; a GPU is used best by one run at a time.
        raise ResNetError(
            "--jobs trains runs side by side on the CPU; with a GPU run them one at a time "
            "(--jobs 1), or add --device cpu"
        )
    threads = max(1, torch.get_num_threads() // parallel)
    order = sorted(jobs, key=lambda job: -job[3])
    logger.info("training %d runs, %d at a time with %d thread(s) each", len(jobs), parallel, threads)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    pool = ProcessPoolExecutor(
        max_workers=parallel,
        mp_context=context,
        initializer=_start_worker,
        initargs=(os.getpid(), stop, threads, logging.getLogger().level),
    )
    try:
        # Progress bars of several processes would overwrite each other; each run keeps its train.log.
        futures = {
            key: pool.submit(_run_side_by_side, {**options, "quiet": True}, run_dir, plan.number(key))
            for key, options, run_dir, _ in order
        }
        keys = {future: key for key, future in futures.items()}
        for future in as_completed(futures.values()):
            if future.exception() is None:
                plan.end(keys[future])
        errors = [f.exception() for f in futures.values()]
    except BaseException:
        stop.set()
        raise
    finally:
        # On Ctrl-C (which the runs see too, and stop at their next step) no waiting run may start.
        pool.shutdown(wait=True, cancel_futures=True)
    for error in errors:
        if error is not None:
            raise error
    return {key: futures[key].result() for key, _, _, _ in jobs}


def _cifar_name(kind: str, depth: int) -> tuple[str, dict[str, Any]]:
    """The registered name for a CIFAR depth, or the generic builder with ``depth``."""
    name = f"{kind}{depth}"
    if name in list_models("cifar"):
        return name, {}
    return f"cifar_{kind}", {"depth": depth}


def _last(run: Any, kind: str, key: str) -> float | None:
    if run is None:  # a kind the experiment did not train (--nets)
        return None
    _, values = run.curve(kind, key)
    return values[-1] if values else None


def train_windows(run: Any) -> list[tuple[float, float]]:
    """(how far into the run, as a fraction of its steps; training error) of each log window. A last
    window shorter than the one before it (a run whose length is no multiple of --log-every, as a
    time-limited one) is folded into that one, weighted by steps: one batch is no training error."""
    steps, errors = (list(c) for c in run.curve("train", "train_error"))
    if len(steps) >= 3 and steps[-1] - steps[-2] < steps[-2] - steps[-3]:
        full, short = steps[-2] - steps[-3], steps[-1] - steps[-2]
        merged = (errors[-2] * full + errors[-1] * short) / (full + short)
        steps, errors = [*steps[:-2], steps[-1]], [*errors[:-2], merged]
    return [(step / steps[-1], error) for step, error in zip(steps, errors)]


def _final_train_error(run: Any) -> float | None:
    if run is None:  # a kind the experiment did not train (--nets)
        return None
    windows = train_windows(run)
    return windows[-1][1] if windows else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _params(run: Any) -> str:
    return f"{run.summary['params']:,}" if "params" in run.summary else "-"


def _save_table(out: Path, stem: str, rows: list[list[str]], note: str) -> None:
    (out / f"{stem}.md").write_text(f"{note}\n\n{markdown_table(rows)}\n")
    (out / f"{stem}.json").write_text(json.dumps({"note": note, "rows": rows}, indent=2) + "\n")


def _nearest(sorted_values: list[float], value: float) -> int:
    """The index of the entry of ``sorted_values`` nearest ``value`` (the earlier one of a tie)."""
    i = bisect.bisect_left(sorted_values, value)
    if i == len(sorted_values) or (i > 0 and value - sorted_values[i - 1] <= sorted_values[i] - value):
        return i - 1
    return i


def depth_order(loaded: dict[str, Any], depths: list[int]) -> list[list[str]]:
    """Figure 6's two claims, on training error: for each pair of neighbouring depths and each kind,
    whether the deeper net's training error is where the paper puts it (higher for plain nets, lower for
    ResNets): in how many log windows of the second half of the run and at the end. Windows are matched
    at the same point of each run's schedule (the same fraction of its steps, where its LR drops fall),
    which is the same step where the runs are equally long, and not where a time limit made them differ."""
    rows = [
        [
            "networks",
            "the paper: the deeper has",
            "second-half windows that agree",
            "at the end (%)",
            "agrees at the end",
        ]
    ]
    for kind, paper in (("plain", "higher"), ("resnet", "lower")):
        if f"{kind}{depths[0]}" not in loaded:  # not trained (--nets)
            continue
        label = KINDS[kind]
        for shallow, deep in zip(depths, depths[1:]):
            deep_windows = train_windows(loaded[f"{kind}{deep}"])
            fractions = [f for f, _ in deep_windows]
            both = [
                (f, error, deep_windows[_nearest(fractions, f)][1])
                for f, error in train_windows(loaded[f"{kind}{shallow}"])
            ]
            row = [f"{label}-{shallow} vs {label}-{deep}", f"{paper} training error"]
            if not both or not deep_windows:
                rows.append(row + ["-", "-", "-"])
                continue
            agree = [d < e if paper == "lower" else d > e for f, e, d in both if f > 0.5]
            _, last_shallow, last_deep = both[-1]
            rows.append(
                row
                + [
                    f"{sum(agree)} of {len(agree)}",
                    f"{100 * last_shallow:.2f} vs {100 * last_deep:.2f}",
                    "yes" if agree[-1] else "no",
                ]
            )
    return rows


def degradation(
    depths: list[int],
    data_options: dict[str, Any],
    out_dir: str | Path,
    *,
    mode: str | None = None,
    overrides: dict[str, Any] | None = None,
    parallel: int = 1,
    kinds: tuple[str, ...] = tuple(KINDS),
    time_limit: float | None = None,
) -> ExperimentResult:
    """Plain and residual CIFAR nets at each depth, the paper's CIFAR recipe; Figure 6 and Table 6.

    ``time_limit``: seconds for the whole experiment, shared between its runs (:func:`run_all`): the
    paper's recipe on the full training set, its schedule fitted to each run's share (:data:`TIMED`).

    ``mode`` "quick" or "medium" trains on the short schedule of :data:`MODES` (docs/experiments.md measures it).
    ``kinds`` trains only the plain or only the residual nets, e.g. to repeat one half of Figure 6 with
    other seeds at half the cost; the other half's columns are then empty.
    """
    from resnet.models.cifar import blocks_per_stage
    from resnet.plots import plot_error_curves
    from resnet.report import load_run, write_report

    if not depths:
        raise ResNetError("--depths needs at least one depth, e.g. 20,56")
    if not kinds or any(kind not in KINDS for kind in kinds):
        raise ResNetError(f"--nets {','.join(kinds) or '(none)'}: choose plain, resnet or both (plain,resnet)")
    for depth in depths:
        blocks_per_stage(depth, 2)  # a clear error for a depth that is not 6n+2
    out = Path(out_dir)
    if mode is not None and mode not in MODES:
        raise ResNetError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    if time_limit is not None and (mode is not None or "iterations" in (overrides or {})):
        raise ResNetError(
            "--time-limit fits the paper's schedule on all the training images to the time given; "
            "drop --quick/--medium and --iterations (or --time-limit)"
        )
    base = _base_options("cifar-paper", data_options, MODES.get(mode or "", TIMED if time_limit else {}), overrides)
    jobs = []
    for depth in depths:
        for kind in kinds:
            name, extra = _cifar_name(kind, depth)
            jobs.append((f"{kind}{depth}", {**base, "model": name, **extra}, out / f"{kind}{depth}", depth))
    runs = run_all(jobs, parallel, time_limit)  # depth is each run's cost: the deepest go first side by side

    loaded = {key: load_run(path) for key, path in runs.items()}
    iterations = next(iter(loaded.values())).summary.get("iterations", "?")
    mode_text = (
        _timed_text(time_limit, loaded)
        if time_limit
        else _mode(mode, iterations, "cifar-paper", base.get("train_subset"))
    )
    rows = [
        [
            "depth",
            "params",
            "plain train err (%)",
            "plain val err (%)",
            "ResNet train err (%)",
            "ResNet val err (%)",
            "paper ResNet test err (%)",
        ]
    ]
    for depth in depths:
        plain, res = loaded.get(f"plain{depth}"), loaded.get(f"resnet{depth}")
        rows.append(
            [
                str(depth),
                _params(res or plain),
                _pct(_final_train_error(plain)),
                _pct(_last(plain, "val", "val_error")),
                _pct(_final_train_error(res)),
                _pct(_last(res, "val", "val_error")),
                f"{PAPER_TABLE6[depth]:.2f}" if depth in PAPER_TABLE6 else "-",
            ]
        )
    note = (
        f"Table 6 ({mode_text}, {base.get('data')}): final training error (running average of the last "
        f"log window, a short last one folded into the one before) and validation error of our runs; the "
        f"paper's column is CIFAR-10 test error after 64k iterations."
    )
    _save_table(out, "table6", rows, note)
    checks = depth_order(loaded, depths)
    _save_table(
        out,
        "depth_order",
        checks,
        f"Figure 6's claims ({mode_text}): training error of the deeper net "
        "against the shallower, log window by log window (the training error of the window's batches).",
    )
    panels = {
        label: {
            f"{label}-{d}": (*run.curve("train", "train_error"), *run.curve("val", "val_error"))
            for d in depths
            for run in [loaded[f"{kind}{d}"]]
        }
        for kind, label in KINDS.items()
        if kind in kinds
    }
    figure = plot_error_curves(panels, out / "figure6.png", title=f"Degradation on {base.get('data')} ({mode_text})")
    # The plotted numbers beside the picture, for anyone re-plotting or checking it.
    (out / "figure6.json").write_text(
        json.dumps(
            {
                panel: {
                    label: dict(zip(("train_steps", "train_error", "val_steps", "val_error"), [list(c) for c in curve]))
                    for label, curve in curves.items()
                }
                for panel, curves in panels.items()
            },
            indent=1,
        )
        + "\n"
    )
    report, _ = write_report(
        list(runs.values()),
        out / "report",
        title=f"Degradation experiment ({mode_text})",
        extra_tables={"Table 6": rows, "Depth order (Figure 6's claims)": checks},
    )
    return ExperimentResult(out, runs, rows, figure, report, checks)


def shortcuts(
    model: str,
    options: list[str],
    data_options: dict[str, Any],
    out_dir: str | Path,
    *,
    quick: bool = False,
    overrides: dict[str, Any] | None = None,
    parallel: int = 1,
    time_limit: float | None = None,
) -> ExperimentResult:
    """One network with shortcut options A, B and C (the idea of the paper's Table 3); ``time_limit``:
    seconds for all of them, in equal shares."""
    from resnet.report import load_run, write_report

    spec = get_spec(model)
    if "shortcut" not in spec.options:
        raise ResNetError(f"{model} has no shortcuts to vary; pick a residual network, e.g. resnet20 or resnet34")
    bad = [o for o in options if o not in ("A", "B", "C")]
    if bad or not options:
        raise ResNetError(f"--options takes shortcut options from A, B, C (got {','.join(options) or 'none'})")
    recipe = "cifar-paper" if model_family(model) == "cifar" else "imagenet-paper"
    base = {**_base_options(recipe, data_options, SHORTCUTS_QUICK if quick else {}, overrides), "model": model}
    out = Path(out_dir)
    if time_limit is not None and (quick or "iterations" in (overrides or {})):
        raise ResNetError("--time-limit sets the runs' length; drop --quick and --iterations (or --time-limit)")
    jobs = [(o, {**base, "shortcut": o}, out / f"{model}-{o}", 1.0) for o in options]
    runs = run_all(jobs, parallel, time_limit)
    loaded = {o: load_run(p) for o, p in runs.items()}
    reference = model == "resnet34" and base.get("data") == "imagefolder"
    rows = [["option", "params", "train err (%)", "val err (%)", "paper top-1 err (%)"]]
    for o in options:
        rows.append(
            [
                o,
                _params(loaded[o]),
                _pct(_final_train_error(loaded[o])),
                _pct(_last(loaded[o], "val", "val_error")),
                f"{PAPER_TABLE3[o]:.2f}" if reference else "-",
            ]
        )
    mode = (
        _timed_text(time_limit, loaded)
        if time_limit
        else _mode("quick" if quick else None, loaded[options[0]].summary.get("iterations", "?"), recipe)
    )
    _save_table(
        out,
        "shortcuts",
        rows,
        f"Shortcut options for {model} ({mode}); the paper's Table 3 column applies only to ResNet-34 on ImageNet.",
    )
    report, _ = write_report(
        list(runs.values()),
        out / "report",
        title=f"Shortcut options: {model} ({mode})",
        extra_tables={"Shortcut options": rows},
    )
    return ExperimentResult(
        out, {f"{model}-{o}": p for o, p in runs.items()}, rows, out / "report" / "curves.png", report
    )
