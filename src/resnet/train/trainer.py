"""The training loop: build the run, then for each step: batch, step, log, validate, checkpoint.

The pieces live in their own rooms: :mod:`~resnet.train.build` builds the run (data, normalisation,
model, optimizer, loaders, schedule), :mod:`~resnet.train.step` takes one SGD step,
:mod:`~resnet.train.resume_state` holds everything a resume needs and checks it. This module wires
them together and writes the run folder (config, metrics, checkpoints, summary).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet import checkpoints as ck
from resnet.atomic_files import atomic_write
from resnet.data import Normalization, make_eval_loader
from resnet.data.transforms import PAPER_VIEW
from resnet.device import Speed, resolve_speed
from resnet.errors import ResNetError
from resnet.evaluate import EvalResult, NonFiniteOutputs, class_scores, evaluate
from resnet.models import get_spec
from resnet.progress import bars_enabled
from resnet.train import config as config_mod
from resnet.train import distributed
from resnet.train.build import Run, build_run
from resnet.train.compile_choice import AutoCompile
from resnet.train.compile_memory import CompileMemory, trial_key
from resnet.train.config import TrainConfig
from resnet.train.metrics import LogFile, MetricsStream, ProgressBar, TensorBoard, format_final, truncate_after
from resnet.train.resume_state import MetricWindow, TrainState, check_new_length, read_resume_point, rng_state
from resnet.train.run_folder import RunFolder, finished_summary, holds_run
from resnet.train.run_time import RunTime
from resnet.train.schedule import Schedule, build_schedule
from resnet.train.step import train_step
from resnet.train.time_limit import (
    REPLAN_BAND,
    WARM_STEPS,
    Costs,
    StepClock,
    TimePlan,
    check_limit,
    describe_duration,
    make_plan,
    margin_s,
    measure_s,
    plan_length,
    validations,
)
from resnet.train.warm_start import init_network, init_summary

logger = logging.getLogger(__name__)


class Interrupted(Exception):
    """SIGINT/SIGTERM: a checkpoint was saved; the message says how to resume."""


class WorkerDied(Interrupted):
    """A data loading worker died (a signal, the OOM killer): the run stopped as on SIGTERM."""


def is_worker_death(error: BaseException) -> bool:
    """torch's error for a DataLoader worker that died: "DataLoader worker (pid N) is killed by signal:
    ..." (from its SIGCHLD handler) or "DataLoader worker (pid(s) N) exited unexpectedly" (from the loader)."""
    return isinstance(error, RuntimeError) and str(error).startswith("DataLoader worker (pid")


@dataclass
class RunResult:
    run_dir: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    finished_earlier: bool = False  # a resumed run that had already finished: nothing was done


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.runs_root) / f"{cfg.model}-{cfg.data}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


@contextmanager
def stop_signals(workers: bool = False) -> Iterator[dict[str, Any]]:
    """SIGINT/SIGTERM set a flag the loop checks at the next step (``stop``: the signal's number); a
    second SIGINT interrupts at once.

    ``workers``: the run's data comes from DataLoader worker processes. torch's SIGCHLD handler raises a
    dead worker's error wherever the main process is, in the middle of a step too; here the error is
    kept in the flag instead (``flag["worker"]``), for the loop to stop at the next step with a good
    checkpoint."""
    flag: dict[str, Any] = {"stop": 0, "worker": None}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    if workers and hasattr(signal, "SIGCHLD"):
        from torch.utils.data._utils import signal_handling

        signal_handling._set_SIGCHLD_handler()  # torch's (once per process), here rather than at the first loader
        torch_handler = signal.getsignal(signal.SIGCHLD)

        def on_child(signum: int, frame: Any) -> None:
            try:
                if callable(torch_handler):
                    torch_handler(signum, frame)
            except RuntimeError as e:
                if not is_worker_death(e):
                    raise
                flag["worker"] = flag["worker"] or str(e)

        old[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, on_child)
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _json_write(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


class Trainer:
    """One training run. ``Trainer(cfg).fit()``; ``Trainer.resume(run_dir).fit()`` continues one."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | Path | None = None,
        resume_from: ck.Checkpoint | None = None,
        *,
        planned: int | None = None,
        time_plan: dict[str, Any] | None = None,
        compiled: str | None = None,
        started: float | None = None,
    ):
        """``planned``/``time_plan``: a resumed time-limited run's length and how it was planned;
        ``compiled``: what ``--compile auto`` decided for a resumed run ("on"/"off"); ``started``:
        ``time.perf_counter()`` when the command started (the time limit counts from it)."""
        self.started = time.perf_counter() if started is None else started
        self.cfg = cfg = with_init_network(cfg) if resume_from is None else cfg
        self.dist = distributed.from_env()
        compile_now = compiled if cfg.compile == "auto" and compiled is not None else cfg.compile
        self.speed: Speed = resolve_speed(
            cfg.device, cfg.precision, cfg.channels_last, compile_now, self.dist.local_rank
        )
        self.compiled = compiled
        distributed.init_process_group(self.dist, self.speed.device, cfg.dist_timeout)
        self.time_plan = TimePlan.from_dict(time_plan)
        self.run: Run = build_run(
            cfg,
            self.dist,
            self.speed,
            resume_from,
            quiet=self.quiet_bars,
            planned=planned,
            length_changes=self.time_plan.changes if self.time_plan is not None else (),
        )
        # --compile auto, undecided: eager first steps, then compile where it pays (compile_choice).
        self.auto_compile = self._auto_compile() if compile_now == "auto" else None
        self._compiled_forward: Any = None  # --compile auto's compiled step, kept across its trials
        # A new time-limited run times its first steps, then plans its length (_plan_length).
        self.clock = StepClock(0, measure_s(cfg.time_limit)) if cfg.time_limit is not None and planned is None else None
        self.last_val_s = 0.0  # how long the latest validation took, for the ETA
        self.pace: tuple[int, float] | None = None  # (steps, training time) at the plan or its last check
        self.pace_since: tuple[int, float] | None = None  # the same at the plan (or the step kind's change)
        self.pace_from: int | None = None  # the step after which the pace restarts (a compile changed it)
        self.eta_mark = (0, 0.0)  # (steps, training time) at the previous validation, for the ETA
        self.state = TrainState(MetricWindow.empty(self.speed.device))
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._resume_state = resume_from.state if resume_from is not None else None
        self.planned_before = self.run.total  # the length in config.json when resumed (resume() sets it)
        self.last_val: tuple[int, EvalResult] | None = None  # (step, result) of the latest validation
        self.first_bad = torch.tensor(-1, device=self.speed.device)  # first step with a non-finite loss
        self.last_saved_step: int | None = None
        self.run_time = RunTime()
        self.progress: ProgressBar | None = None
        self.stop_cause = ""  # which process a stop signal reached, when not all of them (DDP)
        self.resumed_step: int | None = None  # the step of the checkpoint resume() continues from
        self.log_file: LogFile | None = None  # train.log, opened by _start on the main process

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        iterations: int | None = None,
        epochs: float | None = None,
        quiet: bool | None = None,
    ) -> Trainer:
        """Continue the run in ``run_dir``; ``iterations`` or ``epochs`` give it a new length (longer than the
        steps it has taken), for which the LR schedule is recomputed; ``quiet``: no progress bars this time."""
        run_dir = Path(run_dir)
        point = read_resume_point(run_dir, distributed.from_env().world_size, iterations, epochs, quiet)
        trainer = cls(
            point.cfg,
            run_dir,
            resume_from=point.last,
            planned=point.planned if point.cfg.time_limit is not None else None,
            time_plan=point.time_plan,
            compiled=point.compiled,
        )
        trainer.resumed_step = point.step
        trainer.planned_before = point.planned if point.planned is not None else trainer.run.total
        check_new_length(point, run_dir, trainer.run.total, iterations, epochs)
        return trainer

    # What callers and tests read of a run, by the names it always had.
    @property
    def model(self) -> nn.Module:
        return self.run.model

    @property
    def normalization(self) -> Normalization:
        return self.run.normalization

    @property
    def model_options(self) -> dict[str, Any]:
        return self.run.model_options

    @property
    def init_report(self) -> dict[str, Any] | None:
        return self.run.init_report

    @property
    def optimizer(self) -> torch.optim.SGD:
        return self.run.optimizer

    @property
    def schedule(self) -> Any:
        return self.run.schedule

    @property
    def step(self) -> int:
        return self.state.step

    @step.setter
    def step(self, value: int) -> None:
        self.state.step = value

    @property
    def best(self) -> dict[str, Any] | None:
        return self.state.best

    @property
    def total(self) -> int:
        return self.run.total

    @property
    def quiet_bars(self) -> bool:
        """No progress bars (data preparation, validation) with --quiet, nor from DDP ranks other than 0."""
        return self.cfg.quiet or not self.dist.is_main

    # -- the loop --------------------------------------------------------------------------------

    def fit(self, folder: RunFolder | None = None) -> RunResult:
        """Train to the end. ``folder``: the run folder as :func:`train` claimed it; else it is claimed here
        (by the main process: it alone writes there) and released at the end."""
        claimed = None
        if self.dist.is_main:
            if self.run_dir is None:
                self.run_dir = default_run_dir(self.cfg)
            if folder is None:
                claimed = RunFolder.claim(self.run_dir, resume=self._resume_state is not None)
        with claimed or nullcontext():
            return self._fit()

    def _fit(self) -> RunResult:
        resuming = self._resume_state is not None
        self._start(resuming)
        stream = self._open_stream()
        try:
            with stop_signals(workers=self.cfg.workers > 0) as flag:
                batches = self._batches()
                try:
                    while self.step < self.total:
                        tick = time.perf_counter()  # images/s counts data loading, not validation or saving
                        self._train_step(next(batches))
                        self._count_time(time.perf_counter() - tick)
                        if self._due(self.cfg.log_every):
                            self._flush_window(stream)
                        if self._due(self.run.eval_every):
                            self._keep_to_the_limit()
                            self._validate(stream)
                        if self._due(self.run.checkpoint_every):
                            self.save_last()
                        if flag["worker"]:
                            self._worker_died(flag["worker"], batches)
                        if self._stop_requested(flag):
                            self._stop()
                except RuntimeError as e:
                    # Raised by a loader between steps (the SIGCHLD handler's error is in the flag): the
                    # state is that of the last whole step.
                    if not is_worker_death(e):
                        raise
                    self._worker_died(flag["worker"] or str(e), batches)
            try:
                summary = self._finish()
            except RuntimeError as e:  # a worker of the final evaluation: the run is trained and saved
                if not is_worker_death(e):
                    raise
                self._worker_died(str(e), None)
        finally:
            if stream is not None:
                stream.close()  # and with it train.log
        return RunResult(self.run_dir, summary)

    def _start(self, resuming: bool) -> None:
        """The resumed state, checked whole and loaded (before any file of the run folder changes), or
        the new run's files; the clock; the plan in the log."""
        if resuming:
            assert self._resume_state is not None  # what ``resuming`` says (see _fit)
            # The clock starts here (data loading and model building are not the run's time), continuing
            # the totals of the checkpoint.
            self.run_time = RunTime.from_state(self._resume_state.get("time"))
            where = self.run_dir / ck.LAST if self.run_dir is not None else "the resumed checkpoint"
            self.state.restore(
                self._resume_state,
                total=self.total,
                where=where,
                optimizer=self.run.optimizer,
                schedule=self.run.schedule,
                scaler=self.run.scaler,
                rank=self.dist.rank,
                device=self.speed.device,
            )
            self.last_saved_step = self.step
            self._resume_state = None
        if self.dist.is_main:
            assert self.run_dir is not None  # fit() names the folder on the main process
            if resuming:
                truncate_after(self.run_dir / "metrics.jsonl", self.step)
                if self.total != self.planned_before:
                    # First the summary, so that a crash in between leaves an unfinished run, never a finished one.
                    (self.run_dir / "summary.json").unlink(missing_ok=True)
                    config_mod.save_json(self.cfg, self.run_dir / "config.json", extra=self.resolved())
            else:
                self._write_run_files()
        if not resuming:
            self.run_time = RunTime.from_state(None)
        if self.auto_compile is not None:  # its warm-up steps are this session's first ones
            self.auto_compile.clock = StepClock(self.step)
        if self.clock is not None:
            assert self.cfg.time_limit is not None  # what a clock is for
            (elapsed,) = self._slowest(self._elapsed())
            check_limit(self.cfg.time_limit, elapsed)
        if self.dist.is_main:
            assert self.run_dir is not None
            self.log_file = LogFile(self.run_dir / "train.log", self.total)
            self._log_plan(resuming)

    def _train_step(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        lr = self.run.schedule.lr(self.step)
        for group in self.run.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        train_step(
            self.run.forward,
            batches,
            optimizer=self.run.optimizer,
            criterion=self.run.criterion,
            speed=self.speed,
            scaler=self.run.scaler,
            no_sync=self.run.wrapped.no_sync if self.dist.enabled else None,  # type: ignore[arg-type]
            on_batch=self._record,
        )
        if self.run.ema is not None:
            self.run.ema.update(self.run.model)
        self.step += 1
        if self.speed.device.type == "cuda" and self._at_boundary():
            torch.cuda.synchronize(self.speed.device)  # so that the window's and the run's time cover their steps

    def _record(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """One micro-batch into the metrics window; a non-finite loss marks its step (checked at log time)."""
        self.first_bad = torch.where(
            (self.first_bad < 0) & ~torch.isfinite(loss), torch.tensor(self.step, device=loss.device), self.first_bad
        )
        self.state.window.add(loss, logits, labels)

    def _count_time(self, seconds: float) -> None:
        self.state.window.time += seconds
        self.run_time.add_step(seconds)
        if self.progress is not None:
            self.progress.advance(self.step)
        if self.auto_compile is not None:
            self._choose_compile(seconds)
        if self.pace_from is not None and self.step >= self.pace_from:
            self.pace, self.pace_from = (self.run_time.steps, self.run_time.train_s), None
            self.pace_since = self.eta_mark = self.pace
        if self.clock is not None:  # a time-limited run's first steps
            self.clock.add(self.step, seconds)
            # Planned before anything depends on the length: a validation, a checkpoint.
            if self._agreed(self.clock.ready) or self._due(self.run.eval_every) or self._due(self.run.checkpoint_every):
                self._plan_length()

    def _slowest(self, *values: float) -> list[float]:
        """Each of ``values`` at its largest over the processes (times: the slowest one's), so that a decision
        made from them is the same on every process."""
        each = torch.tensor(values, dtype=torch.float64, device=self.speed.device)
        return [float(v) for v in distributed.all_reduce(each, distributed.dist.ReduceOp.MAX).cpu()]

    def _agreed(self, ready: bool) -> bool:
        """``ready`` on every process (each times its own steps; a plan is made by all of them at once)."""
        if not self.dist.enabled:
            return ready
        flag = torch.tensor(int(ready), device=self.speed.device)
        return bool(distributed.all_reduce(flag, distributed.dist.ReduceOp.MIN))

    def _auto_compile(self) -> AutoCompile:
        """--compile auto's state, with the trials of this machine (compile_memory); its clock starts in _start."""
        bundle = self.run.bundle
        image = "x".join(map(str, bundle.image_size)) if bundle.image_size else f"files, augment {self.cfg.augment}"
        key = trial_key(self.speed, {"model": self.cfg.model, **self.run.model_options}, self.run.batches.micro, image)
        return AutoCompile(0, CompileMemory(), key, keeps=self.dist.is_main)

    def _choose_compile(self, seconds: float) -> None:
        """--compile auto: time the eager steps, compile where it pays, keep it where it is faster."""
        auto = self.auto_compile
        assert auto is not None
        auto.clock.add(self.step, seconds)
        if not self._agreed(auto.clock.ready):
            return
        # A trial recalled on any process counts on all (0: none): the same decision everywhere.
        recalled = auto.recalled.speedup if auto.recalled is not None else 0.0
        step_s, elapsed, speedup = self._slowest(auto.clock.step_s, self._elapsed(), recalled)
        if self.clock is not None:  # a time limit still to plan: the time it leaves
            assert self.cfg.time_limit is not None
            remaining = self.cfg.time_limit - elapsed
        else:  # the length is fixed (given, planned, or resumed)
            remaining = (self.total - self.step) * step_s
        verdict = auto.decide(self.step, step_s, self.speed, remaining, speedup or None)
        if verdict.action:
            compile_on = verdict.action == "compile"
            self.speed = dataclasses.replace(self.speed, compile=compile_on)
            if compile_on and self._compiled_forward is None:
                self._compiled_forward = torch.compile(self.run.wrapped)  # once: back from eager, no recompiling
            self.run.forward = self._compiled_forward if compile_on else self.run.wrapped
            if self.clock is not None:  # the plan times the steps the run will take
                self.clock = StepClock(self.step, self.clock.min_s)
            if self.pace is not None:  # after a plan: its pace counts from the first steps of the new kind
                self.pace_from = self.step + WARM_STEPS + 1
        self._say("%s", verdict.line)
        if auto.outcome is not None:
            self.compiled, self.auto_compile = auto.outcome, None
            if self.dist.is_main and self.clock is None:  # (a plan still to come writes it then)
                assert self.run_dir is not None
                config_mod.save_json(self.cfg, self.run_dir / "config.json", extra=self.resolved())

    def _due(self, every: int) -> bool:
        return self.step % every == 0 or self.step == self.total

    def _at_boundary(self) -> bool:
        """A step after which the loop logs, validates or saves (not counted as training time)."""
        return any(self._due(every) for every in (self.cfg.log_every, self.run.eval_every, self.run.checkpoint_every))

    def _stop(self) -> None:
        self.save_last()
        if self.dist.enabled:
            # No process leaves before the main one has written the checkpoint: torchrun ends the
            # others as soon as one exits.
            distributed.barrier()
        cause = f" ({self.stop_cause})" if self.stop_cause else ""
        raise Interrupted(f"stopped at step {self.step}/{self.total}{cause}; checkpoint saved. {self._resume_hint()}")

    def _resume_hint(self) -> str:
        nproc = f" --nproc {self.dist.world_size}" if self.dist.enabled else ""
        return f"Resume with: resnet train --resume {self.run_dir}{nproc}"

    def _worker_died(self, error: str, batches: Generator[Any, None, None] | None) -> None:
        """Stop as on SIGTERM: the other workers ended, the state of the last whole step saved (under DDP,
        where saving takes every process, the last good checkpoint kept), one line with the cause."""
        if batches is not None:
            batches.close()  # ends the loader's other workers (and frees their memory) before saving
        cause = error.split(". ")[0].rstrip(".").replace("DataLoader worker", "data loading worker", 1)
        cause += "; memory may be short (the OOM killer ends workers so): try fewer --workers or a smaller --batch-size"
        if not self.dist.enabled:
            self.save_last()
            raise WorkerDied(
                f"{cause}. Stopped at step {self.step}/{self.total}; checkpoint saved. {self._resume_hint()}"
            )
        if self.last_saved_step is None:
            raise WorkerDied(f"{cause}. Stopped at step {self.step}/{self.total}; no checkpoint was saved")
        raise WorkerDied(
            f"{cause}. Stopped at step {self.step}/{self.total}; {self.saved_note()}. {self._resume_hint()}"
        )

    def _batches(self) -> Generator[list[tuple[torch.Tensor, torch.Tensor]], None, None]:
        """Groups of ``accum`` micro-batches from the current step on, epoch after epoch."""
        accum, per_epoch = self.run.batches.accum, self.run.steps_per_epoch
        while True:
            epoch, index = divmod(self.step, per_epoch)
            self.run.loader.set_epoch(epoch)
            it = iter(self.run.loader.start(epoch, index * accum))
            for _ in range(per_epoch - index):
                yield [next(it) for _ in range(accum)]

    # -- the time limit's plan -------------------------------------------------------------------

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _plan_length(self, stopping: bool = False) -> None:
        """Fix the run's length from the steps timed so far and a few timed validation batches
        (the same plan on every process: the slowest one's costs). ``stopping``: the run is stopping
        before its plan (a signal, a dead worker): planned from the step time alone, never refused, so
        that the checkpoint it saves holds a length."""
        assert self.clock is not None and self.cfg.time_limit is not None  # a new time-limited run
        clock, self.clock = self.clock, None
        if clock.times:
            step_s = clock.step_s
        elif self.auto_compile is not None and self.auto_compile.eager_s > 0:
            step_s = self.auto_compile.eager_s  # the clock restarted at a compile: not the compile itself
        else:
            step_s = self.run_time.train_s / max(self.run_time.steps, 1)
        val_s = final_s = 0.0
        if self.run.val_loader is not None and not stopping:
            val_s = self._eval_seconds(self.run.val_loader)
            if self.cfg.final_protocol != self.cfg.val_protocol:
                final_s = self._eval_seconds(self._final_loader())
        step_s, val_s, final_s, elapsed = self._slowest(step_s, val_s, final_s, self._elapsed())
        if self._due(self.run.eval_every):
            elapsed += val_s  # the validation of this very step is still to come
        args = (elapsed, self.step, Costs(step_s, val_s, final_s), self.run.eval_every, self.run.steps_per_epoch)
        try:
            plan = make_plan(self.cfg.time_limit, *args, batch_size=self.cfg.batch_size)
        except ResNetError:
            if not stopping:
                raise
            plan = make_plan(self.cfg.time_limit, *args, batch_size=self.cfg.batch_size, refuse_short=False)
        self.time_plan = plan
        self.pace = (self.run_time.steps, self.run_time.train_s)  # where _keep_to_the_limit measures from
        self.pace_since = self.eta_mark = self.pace  # (the ETA too: not the trial steps before the plan)
        self._set_total(plan.iterations)
        if self.dist.is_main:
            assert self.run_dir is not None
            config_mod.save_json(self.cfg, self.run_dir / "config.json", extra=self.resolved())
        self._say("%s", plan.describe(self.run.steps_per_epoch))
        self._say("LR schedule for %d iterations: %s", self.total, self._schedule_text())

    def _keep_to_the_limit(self) -> None:
        """At a validation of a run planned in this session: its length fitted again to the pace of its steps.
        Slower since the last check than planned (other work on the machine, a CPU that throttles): shortened
        so that it still ends within the limit at that pace. Faster, since the last check and since the plan
        (a new process's first steps, which the plan timed, are often slow; one slow epoch that shortened
        it): lengthened to use the time, at the slower of the two paces (not for one fast epoch). A change
        of less than :data:`time_limit.REPLAN_BAND` is left alone (a step's pace varies by about as much
        from one epoch to the next), unless the run would then overrun the limit itself. The steps taken
        keep their LR and the rest of the schedule is spread over the new length (``Reaimed``); saved,
        one log line."""
        if self.pace is None or self.pace_since is None or self.time_plan is None or self.step >= self.total:
            return
        assert self.cfg.time_limit is not None  # a plan is made for a time limit
        steps, train_s = self.run_time.steps - self.pace[0], self.run_time.train_s - self.pace[1]
        if steps <= 0:
            return
        overall = (self.run_time.train_s - self.pace_since[1]) / max(self.run_time.steps - self.pace_since[0], 1)
        self.pace = (self.run_time.steps, self.run_time.train_s)
        # The latest validation's time (the plan's estimate before the first one), this step's still to come.
        val_s = self.last_val_s or self.time_plan.val_s
        step_s, overall_s, val_s, elapsed = self._slowest(train_s / steps, overall, val_s, self._elapsed())
        left = self.cfg.time_limit - elapsed - val_s - margin_s(self.cfg.time_limit)
        plan = self.time_plan

        def fit(step_s: float, spare_s: float = 0.0) -> int:
            return plan_length(left + spare_s, self.step, Costs(step_s, val_s, plan.final_s), self.run.eval_every)

        before, total = self.total, fit(step_s)
        pace = f"{self.cfg.batch_size / step_s:,.0f} img/s since the last check, {plan.images_per_s:,.0f} planned"
        if total < before:
            if total >= before * (1 - REPLAN_BAND) and fit(step_s, margin_s(self.cfg.time_limit)) >= before:
                return  # within the band, and within the limit at this pace
            what = "behind"
        else:
            total = fit(max(step_s, overall_s))  # the slower of the two paces: not one fast epoch
            if total < before * (1 + REPLAN_BAND):
                return
            what = "ahead of"
        plan = dataclasses.replace(
            plan,
            iterations=total,
            validations=validations(plan.planned_at_step, total, self.run.eval_every),
            changes=[*plan.changes, [self.step, before, total]],
        )
        self.time_plan = plan
        self._set_total(total)
        if self.dist.is_main:
            assert self.run_dir is not None
            config_mod.save_json(self.cfg, self.run_dir / "config.json", extra=self.resolved())
        self._say(
            f"{what} the time limit's plan ({pace}): {total} iterations instead of {before}, to end within "
            f"{describe_duration(self.cfg.time_limit)}; the rest of the schedule spread over them from this "
            f"step's LR {self.run.schedule.lr(self.step):.4g}: {self._schedule_text()}"
        )

    def _schedule_for(self, total: int) -> Schedule:
        """The schedule for a run of ``total`` steps, re-aimed at each change of a time-limited run's
        length (``time_plan.changes``), with the current one's state (a plateau's, the warm rule's)."""
        changes = self.time_plan.changes if self.time_plan is not None else []
        schedule = build_schedule(self.cfg, total, changes)
        schedule.load_state_dict(self.run.schedule.state_dict())
        return schedule

    def _set_total(self, total: int) -> None:
        """The run's new length, and the schedule recomputed for it (its state kept)."""
        self.run.total = total
        self.run.schedule = self._schedule_for(total)
        if self.progress is not None:
            self.progress.set_total(total)
        if self.log_file is not None:
            self.log_file.total = total

    def _eval_seconds(self, loader: Any, batches: int = 3) -> float:
        """The time of one pass over ``loader``, from its first batches (the first one, which starts
        workers and picks kernels, counts once; the others stand for the rest)."""
        net = self._eval_net()
        was_training = net.training
        net.eval()
        times: list[float] = []
        tick = time.perf_counter()
        try:
            with torch.no_grad():
                for batch in loader:
                    class_scores(net, batch[0], self.speed)
                    if self.speed.device.type == "cuda":
                        torch.cuda.synchronize(self.speed.device)
                    times.append(time.perf_counter() - tick)
                    tick = time.perf_counter()
                    if len(times) > batches:
                        break
        finally:
            net.train(was_training)
        if not times:
            return 0.0
        rest = times[1:] or times
        return times[0] + (len(loader) - 1) * sum(rest) / len(rest)

    # -- log, validate, checkpoint, finish -------------------------------------------------------

    def _flush_window(self, stream: MetricsStream | None) -> None:
        w = self.state.window
        totals = distributed.all_reduce(
            torch.stack(
                [
                    w.loss.double(),
                    w.errors.double(),
                    torch.tensor(float(w.count), device=w.loss.device, dtype=torch.float64),
                ]
            )
        )
        window_time = torch.tensor(w.time, dtype=torch.float64, device=w.loss.device)
        elapsed = float(distributed.all_reduce(window_time, distributed.dist.ReduceOp.MAX))
        loss, errors, count = (float(v) for v in totals)
        self._check_finite()
        if count:
            train_error = errors / count
            schedule = self.run.schedule
            if schedule.observe_train_error(self.step, train_error):
                self._say(
                    "warm rule: training error %.1f%% < %.0f%% at step %d; LR back to %g",
                    100 * train_error,
                    100 * self.cfg.warm_until_error,
                    self.step,
                    schedule.lr(self.step),
                )
            if stream is not None:
                stream.emit(
                    {
                        "kind": "train",
                        "step": self.step,
                        "epoch": self._epoch(),
                        "loss": loss / count,
                        "train_error": train_error,
                        "lr": schedule.lr(self.step - 1),
                        "images_per_s": count / max(elapsed, 1e-9),
                    }
                )
        self.state.window = MetricWindow.empty(self.speed.device)

    def _epoch(self) -> float:
        return round(self.step / self.run.steps_per_epoch, 4)

    def _validate(self, stream: MetricsStream | None) -> EvalResult | None:
        if self.run.val_loader is None:
            return None
        tick = time.perf_counter()
        try:
            result = evaluate(
                self._eval_net(), self.run.val_loader, self.speed, quiet=self.quiet_bars, desc="validating"
            )
        except NonFiniteOutputs as e:  # before best/last are written: no checkpoint holds these weights
            raise ResNetError(
                f"validation at step {self.step}: {e}; stopped, {self.saved_note()}. Try a lower --lr"
            ) from None
        self.last_val_s = time.perf_counter() - tick
        if self.run.schedule.observe_val_error(result.top1_error):
            self._say("validation error plateaued: LR now %g", self.run.schedule.lr(self.step))
        if stream is not None:
            stream.emit(
                {
                    "kind": "val",
                    "step": self.step,
                    "epoch": self._epoch(),
                    "val_error": result.top1_error,
                    "val_top5_error": result.top5_error,
                    "val_loss": result.loss,
                    # the run's wall time so far (all sessions), for error-against-time curves
                    "wall_s": round(self.run_time.wall_s, 3),
                    "eta_s": round(self._eta_s(), 1),
                }
            )
        self.last_val = (self.step, result)
        if self.best is None or result.top1_error < self.best["val_error"]:
            self.state.best = {"val_error": result.top1_error, "step": self.step}
            if self.dist.is_main:
                assert self.run_dir is not None  # fit() names the folder on the main process
                weights = self.run.ema.state_dict() if self.run.ema else self.model.state_dict()
                ck.save_checkpoint(
                    self.run_dir / ck.BEST,
                    {**self.meta(), "val_error": result.top1_error, "eval_weights": "model"},
                    weights,
                )
        return result

    def _eta_s(self) -> float:
        """The time left to the end of the final evaluation: the steps at this run's recent step time, the
        validations at the latest one's, the final test as planned (or as long as a validation)."""
        steps = self.total - self.step
        # The pace since the previous validation: the first steps (compiling, kernel choice) are slow.
        done, took = self.run_time.steps - self.eta_mark[0], self.run_time.train_s - self.eta_mark[1]
        step_s = took / done if done > 0 else self.run_time.train_s / max(self.run_time.steps, 1)
        self.eta_mark = (self.run_time.steps, self.run_time.train_s)
        if self.time_plan is not None:
            final_s = self.time_plan.final_s
        else:
            final_s = self.last_val_s if self.cfg.final_protocol != self.cfg.val_protocol else 0.0
        return steps * step_s + validations(self.step, self.total, self.run.eval_every) * self.last_val_s + final_s

    def _eval_net(self) -> nn.Module:
        if self.run.ema is None:
            return self.model
        assert self.run.eval_model is not None
        self.run.eval_model.load_state_dict(self.run.ema.state_dict())
        return self.run.eval_model

    def save_last(self) -> None:
        if self.clock is not None:  # stopped before the plan: the checkpoint must hold the planned length
            self._plan_length(stopping=True)
        self._check_finite(weights=True)
        state = self.state.to_checkpoint(  # collective under DDP: every rank takes part
            optimizer=self.run.optimizer,
            schedule=self.run.schedule,
            scaler=self.run.scaler,
            steps_per_epoch=self.run.steps_per_epoch,
            accum=self.run.batches.accum,
            rng=self._gather_rng(),
            time=self.run_time.state_dict(),
        )
        if self.dist.is_main:
            assert self.run_dir is not None  # fit() names the folder on the main process
            ck.save_checkpoint(
                self.run_dir / ck.LAST,
                self.meta(),
                self.model.state_dict(),
                self.run.ema.state_dict() if self.run.ema else None,
                state,
            )
        self.last_saved_step = self.step

    def _gather_rng(self) -> Any:
        """Every process's RNG states (a list by rank under DDP), so each rank resumes its own streams."""
        own = rng_state()
        if not self.dist.enabled:
            return own
        import torch.distributed as dist

        states: list[Any] = [None] * self.dist.world_size
        dist.all_gather_object(states, own)
        return states

    def _check_finite(self, weights: bool = False) -> None:
        """Stop on a NaN/Inf loss (the first such step is tracked on the device, without syncing each
        step) or, before a checkpoint is written, on NaN/Inf weights, so a saved checkpoint is always good."""
        first_bad = self.first_bad.clone()
        first_bad = torch.where(first_bad < 0, torch.tensor(2**62, device=first_bad.device), first_bad)
        bad = int(distributed.all_reduce(first_bad, distributed.dist.ReduceOp.MIN))
        what = "loss"
        if bad >= 2**62 and weights and ck.nonfinite_keys(self.model.state_dict()):
            bad, what = self.step - 1, "weights"
        if bad < 2**62:
            raise ResNetError(
                f"the {what} became NaN or infinite at step {bad + 1} (epoch "
                f"{bad // self.run.steps_per_epoch + 1}); stopped, {self.saved_note()}. Try a lower --lr"
            )

    def saved_note(self) -> str:
        """Where the last checkpoint is, for error lines (every saved checkpoint was checked finite).

        Under DDP without --run-dir only the main process knows the folder it chose: the others name the file.
        """
        if self.last_saved_step is None:
            return "no checkpoint was saved"
        where = self.run_dir / ck.LAST if self.run_dir is not None else f"{ck.LAST} in the run folder"
        return f"the last good checkpoint is {where} (step {self.last_saved_step})"

    def _stop_requested(self, flag: dict[str, int]) -> bool:
        if not self.dist.enabled:
            return bool(flag["stop"])
        if self.step % self.cfg.log_every and self.step != self.total:
            return False  # ranks agree on stopping only at log steps, to keep collectives in step
        signals = self._stop_signals(flag)
        if signals.any() and not signals.all():
            # A signal to the launcher reaches every process, a few microseconds apart: one may have got
            # it just after this exchange. Ask again once it has had time to arrive.
            time.sleep(0.2)
            signals = self._stop_signals(flag)
        got = [rank for rank, signum in enumerate(signals.tolist()) if signum]
        if got and len(got) < self.dist.world_size:
            name = signal.Signals(int(signals[got[0]])).name
            who = ", ".join(map(str, got))
            self.stop_cause = f"{name} to process {who} of {self.dist.world_size}"
        return bool(got)

    def _stop_signals(self, flag: dict[str, int]) -> torch.Tensor:
        """The stop signal each process has received (0: none), by rank, the same on every process."""
        signals = torch.zeros(self.dist.world_size, dtype=torch.long, device=self.speed.device)
        signals[self.dist.rank] = flag["stop"]
        return distributed.all_reduce(signals).cpu()

    def _finish(self) -> dict[str, Any]:
        wall = self.run_time.wall_s  # the final evaluation below is not part of the loop's time
        final = self._final_evaluation()
        summary = {
            "run_dir": str(self.run_dir),
            "model": self.cfg.model,
            "data": self.cfg.data,
            "params": sum(p.numel() for p in self.model.parameters()),
            "iterations": self.total,
            "epochs": self.total / self.run.steps_per_epoch,
            "wall_time_s": wall,
            "train_time_s": self.run_time.train_s,
            "images_per_s": self.run_time.images_per_s(self.cfg.batch_size),
            "timed_iterations": self.run_time.steps,
            # This session's whole time, final evaluation included (what --time-limit bounds)
            "session_s": round(self._elapsed(), 3),
            "time_limit_s": self.cfg.time_limit,
            "final": self._final_dict(final) if final else None,
            "best": self.best,
            "checkpoints": {"last": ck.LAST, "best": ck.BEST if self.best else None},
        }
        if self.dist.is_main:
            assert self.run_dir is not None  # fit() names the folder on the main process
            _json_write(self.run_dir / "summary.json", summary)
            if self.log_file is not None and final is not None:  # `resnet train` prints it on stdout
                self.log_file.line(format_final(self._final_dict(final)))
        return summary

    def _final_dict(self, final: EvalResult) -> dict[str, Any]:
        return {"protocol": self.cfg.final_protocol, "precision": self.speed.precision, **final.to_dict()}

    def _final_evaluation(self) -> EvalResult | None:
        if self.run.val_loader is None:
            return None
        if self.cfg.final_protocol != self.cfg.val_protocol:
            loader = self._final_loader()
            return evaluate(self._eval_net(), loader, self.speed, quiet=self.quiet_bars, desc="final evaluation")
        if self.last_val is not None and self.last_val[0] == self.step:
            return self.last_val[1]  # the same weights, images and protocol were just validated
        return evaluate(
            self._eval_net(), self.run.val_loader, self.speed, quiet=self.quiet_bars, desc="final evaluation"
        )

    def _final_loader(self) -> Any:
        """The validation images under the final protocol, where it differs from the validations'."""
        assert self.run.bundle.val is not None  # build_run makes a val_loader only for a val split
        return make_eval_loader(
            self.run.bundle.val,
            self.run.batches.micro,
            protocol=self.cfg.final_protocol,
            normalization=self.normalization,
            device=self.speed.device,
            workers=self.cfg.workers,
            view=self.run.eval_view or PAPER_VIEW,
        )

    # -- the run folder's files and the log's plan -----------------------------------------------

    def meta(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "model": cfg.model,
            "model_options": self.model_options,
            "classes": list(self.run.bundle.classes),
            "normalization": self.normalization.to_dict(),
            "image_size": list(self.run.bundle.image_size) if self.run.bundle.image_size else None,
            "val_protocol": cfg.val_protocol,
            "eval_protocol": cfg.final_protocol,
            "precision": self.speed.precision,  # the autocast it trained and validated under; `resnet eval`'s default
            "data": {
                "name": cfg.data,
                "data_dir": cfg.data_dir,
                "val_split": cfg.val_split,
                "split_seed": cfg.split_seed,
                "cache_dir": cfg.cache_dir,
                "train_subset": cfg.train_subset,
            },
            "eval_weights": "ema" if self.run.ema else "model",
            "init": self.run.init_report,
            # The --init weights' test view: `resnet eval RUN`, predict and export cut the images as validation did.
            **({"eval_view": self.run.eval_view.to_dict()} if self.run.eval_view is not None else {}),
            "step": self.step,
            "epoch": self.step / self.run.steps_per_epoch,
        }

    def resolved(self) -> dict[str, Any]:
        """What the config leaves to the data and machine: written beside it into config.json."""
        return {
            "iterations": self.total,
            "steps_per_epoch": self.run.steps_per_epoch,
            "epochs": self.total / self.run.steps_per_epoch,
            "milestone_steps": self.run.schedule.milestone_steps() if self.cfg.schedule == "multistep" else None,
            "world_size": self.dist.world_size,
            "per_process_batch": self.run.batches.per_rank,
            "micro_batch": self.run.batches.micro,
            "accumulation_steps": self.run.batches.accum,
            "warm_rule": self.cfg.uses_warm_rule,
            # What the model name leaves implicit, for reports: resnet20 is depth 20 with option A shortcuts.
            "depth": config_mod.model_depth(self.cfg) or None,
            "shortcut": self.model_options.get("shortcut", get_spec(self.cfg.model).defaults.get("shortcut")),
            "precision": self.speed.precision,
            "speed": self.speed.describe(),
            "init": self.run.init_report,
            "frozen": self.run.frozen,
            "time_plan": self.time_plan.to_dict() if self.time_plan is not None else None,
            "compile_auto": self.compiled,  # what --compile auto decided (a resume keeps it); None: not decided
        }

    def _write_run_files(self) -> None:
        assert self.run_dir is not None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResNetError(f"cannot create the run folder {self.run_dir}: {e.strerror}") from None
        config_mod.save_json(self.cfg, self.run_dir / "config.json", extra=self.resolved())
        _json_write(self.run_dir / "classes.json", list(self.run.bundle.classes))
        _json_write(self.run_dir / "normalization.json", self.normalization.to_dict())
        _json_write(self.run_dir / "split.json", self.run.bundle.split)

    def _open_stream(self) -> MetricsStream | None:
        if not self.dist.is_main:
            return None
        assert self.run_dir is not None
        # No bar when quiet or when stderr is not a terminal (logs, CI): one log line per validation instead.
        self.progress = ProgressBar(self.total, self.step, quiet=not bars_enabled(self.cfg.quiet))
        assert self.log_file is not None  # opened by _start
        sinks: list[Any] = [self.log_file, self.progress]
        if self.cfg.tensorboard and TensorBoard.available():
            sinks.append(TensorBoard(self.run_dir / "tensorboard"))
        return MetricsStream(self.run_dir / "metrics.jsonl", sinks)

    def _say(self, message: str, *args: Any) -> None:
        """A line for stderr and, on the main process, for train.log (the plan, LR changes, the final result)."""
        logger.info(message, *args)
        if self.log_file is not None:
            self.log_file.line(message % args if args else message)

    def _log_plan(self, resuming: bool) -> None:
        cfg = self.cfg
        self._say("%s run folder: %s", "resuming" if resuming else "new", self.run_dir)
        if not resuming and self.run.init_report is not None and self.log_file is not None:
            self.log_file.line(init_summary(self.run.init_report))  # stderr had it when the weights were loaded
            if self.run.init_report.get("input_size"):
                self.log_file.line(self.run.init_report["input_size"])
        if resuming and self.total != self.planned_before:
            self._say(
                "new length: %d iterations instead of %d; the LR schedule is recomputed for it (%s); the %d "
                "steps taken are kept, step %d runs at LR %g",
                self.total,
                self.planned_before,
                self._schedule_text(),
                self.step,
                self.step + 1,
                self.run.schedule.lr(self.step),
            )
        if resuming and self.run_time.steps < self.step:
            self._say("%s predates time keeping: wall and training time count from step %d", ck.LAST, self.step)
        bundle, batches = self.run.bundle, self.run.batches
        length = (
            f"epochs of {self.run.steps_per_epoch} steps; the length is planned after the first steps to end "
            f"within --time-limit {describe_duration(self.cfg.time_limit or 0)}"
            if self.clock is not None
            else f"{self.total} iterations ({self.total / self.run.steps_per_epoch:.1f} epochs of "
            f"{self.run.steps_per_epoch} steps)"
        )
        self._say(
            "%s on %s: %s train / %s val images, %d classes; %s",
            cfg.model,
            cfg.data,
            _size(bundle.train),
            _size(bundle.val),
            bundle.num_classes,
            length,
        )
        accum = (
            f", gradient accumulation over {batches.accum} micro-batches of {batches.micro} (BN sees {batches.micro})"
            if batches.accum > 1
            else ""
        )
        self._say(
            "global batch %d = %d process(es) x %d%s; LR %g for that batch",
            cfg.batch_size,
            self.dist.world_size,
            batches.per_rank,
            accum,
            cfg.lr,
        )
        self._say("speed: %s", self.speed.describe())
        view = self.run.eval_view
        if view is not None:
            self._say(
                "test view of the --init weights: shorter side %d, centre %d crop, %s (validation, the final "
                "evaluation, and resnet eval of this run)",
                view.resize,
                view.crop,
                view.interpolation,
            )

    def _schedule_text(self) -> str:
        cfg = self.cfg
        if cfg.schedule == "multistep":
            return (
                f"milestones {', '.join(f'{m:g}' for m in cfg.milestones)} of it: steps "
                f"{', '.join(map(str, self.run.schedule.milestone_steps()))}"
            )
        if cfg.schedule in ("cosine", "linear"):
            return f"{cfg.schedule} decay reaching 0 at step {self.total}"
        return f"{cfg.schedule}: it does not depend on the length"


def with_init_network(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` building the network of ``--init``'s published weights (``--init resnet18``) where ``--model``
    was left at the recipe's default (see :func:`~resnet.train.warm_start.init_network`)."""
    if not cfg.init:
        return cfg
    model = init_network(cfg.model, config_mod.recipe_defaults(cfg.recipe)["model"], cfg.init)
    return cfg if model == cfg.model else cfg.replace(model=model)


def _size(split: Any) -> str:
    return "no" if split is None else str(len(split))


def _fit(trainer: Trainer, folder: RunFolder | None) -> RunResult:
    """Fit, with a stuck or dead peer process reported as one line after ``--dist-timeout``."""
    with distributed.timeout_as_error(trainer.dist, trainer.cfg.dist_timeout, trainer.saved_note):
        result = trainer.fit(folder)
        # Every process has finished before any takes its process group down: a rank whose peers closed
        # their connections first can abort in gloo's teardown ("terminate called without an active exception").
        distributed.barrier()
        return result


def _after_restart(cfg: TrainConfig, restart: int) -> str:
    """How a worker group that torchrun restarted (``restart`` > 0) takes up the run of ``cfg``.

    "resume": its run folder holds this run (the same config) and its last checkpoint: continue from
    there, as ``--resume`` does. "again": the run folder holds this run but no checkpoint yet: start it
    again over what it left. "new": anything else; a folder holding another run is refused as always.
    """
    if not cfg.run_dir:
        if distributed.from_env().is_main:
            logger.warning(
                "torchrun restart %d: the run has no --run-dir, so it starts again from step 0 in a new "
                "folder; give --run-dir to have restarts continue from its last checkpoint",
                restart,
            )
        return "new"
    run_dir = Path(cfg.run_dir)
    if not holds_run(run_dir) or not (run_dir / "config.json").is_file():
        return "new"
    try:
        saved = config_mod.read_run_config(run_dir / "config.json")[0]
    except ResNetError:
        return "new"
    if saved.to_dict() != cfg.to_dict():
        return "new"
    return "resume" if (run_dir / ck.LAST).is_file() else "again"


def train(
    cfg: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    iterations: int | None = None,
    epochs: float | None = None,
    quiet: bool | None = None,
    started: float | None = None,
) -> RunResult:
    """Train with ``cfg`` (default: the embedded digits job), or continue the run in ``resume``.

    A new run refuses a run folder that already holds a run unless ``overwrite`` (its files are then
    deleted first); a folder another training is using is always refused. A resumed run that has
    finished is left untouched (``finished_earlier``) unless ``iterations`` or ``epochs`` give it a
    new length: the LR schedule is then recomputed for that length and training continues from the
    steps already taken. ``quiet`` (with ``resume``): no progress bars, whatever the run was started with.
    ``started``: ``time.perf_counter()`` when the command began, from which ``cfg.time_limit`` counts
    (default: now).

    A worker group that torchrun restarted (``--max-restarts``) continues the run in ``cfg.run_dir``
    from its last checkpoint, as ``resume`` does, when that folder holds this run (config.json equal
    to ``cfg``); a run that saved no checkpoint yet starts again over what it left (see
    :func:`_after_restart`).
    """
    # A time limit counts from here (or from ``started``, the command's start): data and model are in it.
    started = time.perf_counter() if started is None else started
    if resume is None and (iterations is not None or epochs is not None):
        raise TypeError("iterations and epochs change the length of a resumed run; a new run takes them in cfg")
    is_main = distributed.from_env().is_main
    restart = distributed.restart_count()
    try:
        new = None if resume is not None else with_init_network(cfg or TrainConfig())  # --init's network first
        if new is not None and restart:
            how = _after_restart(new, restart)
            if how == "resume":
                resume = new.run_dir
            elif how == "again":
                if is_main:
                    logger.info(
                        "torchrun restart %d: %s holds no checkpoint of this run yet; starting it again",
                        restart,
                        new.run_dir,
                    )
                overwrite = True
        if resume is not None:
            run_dir = Path(resume)
            if iterations is None and epochs is None and (summary := finished_summary(run_dir)) is not None:
                return RunResult(run_dir, summary, finished_earlier=True)
            with RunFolder.claim(run_dir, resume=True) if is_main else nullcontext() as folder:
                trainer = Trainer.resume(run_dir, iterations, epochs, quiet)
                if restart and is_main:
                    logger.info(
                        "torchrun restart %d: resuming the run in %s from its last checkpoint (step %s)",
                        restart,
                        run_dir,
                        trainer.resumed_step,
                    )
                return _fit(trainer, folder)
        assert new is not None  # every run that is not a resume
        new_dir = Path(new.run_dir) if new.run_dir else default_run_dir(new) if is_main else None
        # new_dir is None only on the other processes of a run without --run-dir.
        claim = RunFolder.claim(new_dir, overwrite=overwrite) if is_main and new_dir is not None else nullcontext()
        with claim as folder:
            return _fit(Trainer(new, new_dir, started=started), folder)
    finally:
        distributed.shutdown()
