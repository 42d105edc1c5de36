"""The training loop: config -> data -> model -> SGD -> steps, validations, checkpoints, summary.

Everything a resumed run needs to take exactly the same path is in the ``last`` checkpoint: weights,
optimizer buffers, schedule state, step, RNG states of torch/numpy/python/CUDA, EMA, best metric,
and the running sums of the current metrics window. The data order is a pure function of
(seed, epoch, rank), so restoring the step restores the batches.
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from resnet.errors import ResNetError
from resnet.evaluate import EvalResult, NonFiniteOutputs, evaluate
from resnet.files import atomic_write
from resnet.progress import bars_enabled
from resnet.train import checkpoint as ck
from resnet.train import config as config_mod
from resnet.train import distributed
from resnet.train.config import TrainConfig
from resnet.train.device import Speed, at_least_float32, resolve_speed
from resnet.train.ema import EMA
from resnet.train.freeze import apply_freezing, head_lr_scale, is_head
from resnet.train.meta_schema import validate_train_state
from resnet.train.metrics import LogFile, MetricsStream, ProgressBar, TensorBoard, truncate_after
from resnet.train.run_folder import RunFolder, finished_summary
from resnet.train.run_time import RunTime
from resnet.train.schedule import build_schedule, milestone_steps
from resnet.train.warm_start import ARCHITECTURE_OPTIONS, apply_init, init_model_options, init_normalization, resolve_init

logger = logging.getLogger(__name__)


class Interrupted(Exception):
    """SIGINT/SIGTERM: a checkpoint was saved; the message says how to resume."""


@dataclass
class RunResult:
    run_dir: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    finished_earlier: bool = False  # a resumed run that had already finished: nothing was done


# -- pieces ----------------------------------------------------------------------------------------

def model_options(cfg: TrainConfig, num_classes: int, in_channels: int) -> dict[str, Any]:
    opts: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels}
    for name in ("depth", "shortcut", "stride_on"):
        if getattr(cfg, name) is not None:
            opts[name] = getattr(cfg, name)
    if cfg.zero_init_residual:
        opts["zero_init_residual"] = True
    return opts


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters (frozen ones stay out) in model order: one group, split when BN parameters
    and biases (1-d tensors) are exempt from weight decay and when --head-lr gives the classifier its own
    LR. Each group's LR is the schedule's times its ``lr_scale``."""
    head_scale = head_lr_scale(cfg.head_lr, cfg.lr)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (head_scale is not None and is_head(name), not (cfg.wd_bn_bias or p.ndim > 1))
            groups.setdefault(key, []).append(p)
    return [{"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
             "lr_scale": head_scale if head else 1.0}
            for (head, no_decay), params in sorted(groups.items(), key=lambda item: item[0])]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """The paper's SGD with momentum; ``foreach`` updates all tensors in a few kernels (the same numbers
    as the per-tensor loop, which is PyTorch's default on CPU)."""
    return torch.optim.SGD(param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum, foreach=True)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(), "python": random.getstate(),
        "numpy": [np_state[0], [int(v) for v in np_state[1]], int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.runs_root) / f"{cfg.model}-{cfg.data}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


@contextmanager
def stop_signals() -> Iterator[dict[str, bool]]:
    """SIGINT/SIGTERM set a flag the loop checks at the next step; a second SIGINT interrupts at once."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag["stop"] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _json_write(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


# -- the run ---------------------------------------------------------------------------------------

class Trainer:
    """One training run. ``Trainer(cfg).fit()``; ``Trainer.resume(run_dir).fit()`` continues one."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None, resume_from: ck.Checkpoint | None = None):
        from resnet import create_model
        from resnet.data import Normalization, fit_normalization, load_dataset, make_eval_loader, make_train_loader
        from resnet.data.transforms import check_protocol

        self.cfg = cfg
        self.dist = distributed.from_env()
        self.speed: Speed = resolve_speed(cfg, self.dist.local_rank)
        distributed.init_process_group(self.dist, self.speed.device, cfg.dist_timeout)
        if cfg.batch_size % self.dist.world_size:
            raise ResNetError(f"option 'batch-size': {cfg.batch_size} is not divisible by the "
                              f"{self.dist.world_size} processes")
        self.per_rank = cfg.batch_size // self.dist.world_size
        self.micro = min(cfg.micro_batch or self.per_rank, self.per_rank)
        if self.per_rank % self.micro:
            raise ResNetError(f"option 'micro-batch': {self.micro} does not divide the per-process batch "
                              f"{self.per_rank}")
        self.accum = self.per_rank // self.micro

        # Read --init before the data, so a wrong file fails at once; a resumed run never reads it again.
        init = resolve_init(cfg.init, cfg.model) if cfg.init and resume_from is None else None
        torch.manual_seed(cfg.seed)
        # The config holds counts as int and fractions as float (option_types.val_split_value).
        self.bundle = load_dataset(cfg.data, cfg.data_dir, val_split=cfg.val_split, split_seed=cfg.split_seed,
                                   cache_dir=cfg.cache_dir, skip_bad_images=cfg.skip_bad_images,
                                   download=cfg.download, quiet=self.quiet_bars, train_subset=cfg.train_subset)
        if self.bundle.num_classes < 2:  # one class is always right: "0% error" would mean nothing
            raise ResNetError(f"option 'data-dir': {cfg.data_dir} has {self.bundle.num_classes} class "
                              f"({', '.join(self.bundle.classes)}); training needs at least 2 class folders")
        stored = init_normalization(init[1]) if init is not None and cfg.normalization == "init" else None
        if resume_from is not None:
            self.normalization = Normalization.from_dict(resume_from.meta["normalization"])
        elif stored is not None:
            self.normalization = Normalization.from_dict(stored)
        elif cfg.normalization == "init":
            logger.info("--init %s carries no normalisation: channel statistics of the training set", cfg.init)
            self.normalization = fit_normalization(self.bundle, "channel", quiet=self.quiet_bars)
        else:
            self.normalization = fit_normalization(self.bundle, cfg.normalization, quiet=self.quiet_bars)

        device = self.speed.device
        self.model_options = model_options(cfg, self.bundle.num_classes, self.bundle.in_channels)
        if init is not None:
            self.model_options = init_model_options(init[1], self.model_options)
        elif resume_from is not None:  # e.g. stride_on 3x3 taken from --init weights at the start
            saved = resume_from.meta.get("model_options") or {}
            self.model_options.update({k: saved[k] for k in ARCHITECTURE_OPTIONS if k in saved})
        model = create_model(cfg.model, **self.model_options)
        self.init_report = resume_from.meta.get("init") if resume_from is not None else None
        if resume_from is not None:
            ck.load_weights(model, resume_from.model, name=cfg.model)
        elif init is not None:
            self.init_report = apply_init(model, *init, classes=list(self.bundle.classes), head=cfg.init_head,
                                          non_strict=cfg.init_non_strict, model_name=cfg.model)
        model = model.to(device)
        if self.speed.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and self.dist.enabled:
            model = distributed.convert_sync_batchnorm(model, device)
        # Before the optimizer and DDP, which both take the trainable parameters only.
        self.frozen = apply_freezing(model, cfg.freeze_until, cfg.linear_probe, cfg.freeze_bn)
        self.model = model  # the plain module: what is saved and evaluated
        self.ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.eval_model = create_model(cfg.model, **self.model_options).to(device) if self.ema else None
        if self.dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.wrapped: nn.Module = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        else:
            self.wrapped = model
        self.forward: nn.Module = torch.compile(self.wrapped) if self.speed.compile else self.wrapped

        self.optimizer = make_optimizer(model, cfg)
        self.scaler = torch.amp.GradScaler(device.type) if self.speed.precision == "fp16" else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

        self.loader = make_train_loader(self.bundle, self.micro, augment=cfg.augment,
                                        normalization=self.normalization, device=device, seed=cfg.seed,
                                        rank=self.dist.rank, world_size=self.dist.world_size,
                                        workers=cfg.workers, drop_last=True)
        self.steps_per_epoch = len(self.loader) // self.accum
        if self.steps_per_epoch < 1:
            raise ResNetError(f"option 'batch-size': {cfg.batch_size} is larger than the training set "
                              f"({len(self.bundle.train)} images)")
        self.total = cfg.iterations or math.ceil(cfg.epochs * self.steps_per_epoch)
        self.schedule = build_schedule(cfg, self.total)
        eval_batch = max(self.micro, 256) if self.bundle.kind == "tensor" else self.micro
        self.val_loader = make_eval_loader(self.bundle.val, eval_batch, protocol=cfg.val_protocol,
                                           normalization=self.normalization, device=device,
                                           workers=cfg.workers) if self.bundle.val is not None else None
        check_protocol(cfg.final_protocol, self.bundle.image_size)  # refused now, not after training
        self.eval_every = cfg.eval_every or self.steps_per_epoch
        self.checkpoint_every = cfg.checkpoint_every or self.eval_every

        self.step = 0
        self.best: dict[str, Any] | None = None
        self.last_val: tuple[int, EvalResult] | None = None  # (step, result) of the latest validation
        self.window = self._empty_window()
        self.first_bad = torch.tensor(-1, device=device)
        self.last_saved_step: int | None = None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._resume_state = resume_from.state if resume_from is not None else None
        self.planned_before = self.total  # the length in config.json when resumed (resume() sets it)
        self.run_time = RunTime()
        self.progress: ProgressBar | None = None
        if resume_from is not None and resume_from.ema is not None and self.ema is not None:
            self.ema.load_state_dict(resume_from.ema)

    # -- construction helpers --------------------------------------------------------------------

    @property
    def quiet_bars(self) -> bool:
        """No progress bars (data preparation, validation) with --quiet, nor from DDP ranks other than 0."""
        return self.cfg.quiet or not self.dist.is_main

    @classmethod
    def resume(cls, run_dir: str | Path, iterations: int | None = None, epochs: float | None = None) -> Trainer:
        """Continue the run in ``run_dir``; ``iterations`` or ``epochs`` give it a new length (longer than the
        steps it has taken), for which the LR schedule is recomputed."""
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise ResNetError(f"--resume {run_dir}: not a run folder (no config.json)")
        if not (run_dir / ck.LAST).is_file():
            raise ResNetError(f"--resume {run_dir}: no {ck.LAST} to resume from (the run saved no checkpoint yet)")
        cfg, resolved = config_mod.read_run_config(run_dir / "config.json")
        saved_world = resolved.get("world_size", 1)
        if saved_world != distributed.from_env().world_size:
            raise ResNetError(f"--resume {run_dir}: the run used {saved_world} process(es); resume it with "
                              f"--nproc {saved_world} so every process sees the same data")
        last = ck.load_checkpoint(run_dir / ck.LAST)
        if last.state is None:
            raise ResNetError(f"--resume {run_dir}: {ck.LAST} holds no training state")
        if isinstance(resolved.get("iterations"), int):  # checked before the data and model are built
            validate_train_state(last.state, resolved["iterations"], run_dir / ck.LAST)
        new_length = iterations is not None or epochs is not None
        if new_length:
            cfg = cfg.replace(iterations=iterations, epochs=cfg.epochs if epochs is None else epochs)
        trainer = cls(cfg, run_dir, resume_from=last)
        trainer.planned_before = int(resolved.get("iterations", trainer.total))
        taken = int(last.state["step"])
        if new_length and trainer.total <= taken:
            given = f"--iterations {iterations}" if iterations is not None else f"--epochs {epochs:g}"
            raise ResNetError(f"--resume {run_dir} {given}: that is {trainer.total} iterations, but the run has "
                              f"taken {taken} already; give a longer length to extend it")
        return trainer

    def _empty_window(self) -> dict[str, Any]:
        d = self.speed.device
        return {"loss": torch.zeros((), device=d), "errors": torch.zeros((), device=d, dtype=torch.long),
                "count": 0, "time": 0.0}

    def _restore(self, state: dict[str, Any]) -> None:
        where = self.run_dir / ck.LAST if self.run_dir is not None else "the resumed checkpoint"
        validate_train_state(state, self.total, where)
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, OverflowError) as e:
            if isinstance(e, ResNetError):
                raise
            first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
            raise ResNetError(f"{where}: damaged training state ({type(e).__name__}: {first})") from None

    def _load_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best = state["best"]
        w = state["window"]
        d = self.speed.device
        self.window = {"loss": torch.tensor(w["loss"], device=d), "errors": torch.tensor(w["errors"], device=d),
                       "count": int(w["count"]), "time": float(w["time"])}
        set_rng_state(state["rng"][self.dist.rank] if isinstance(state["rng"], list) else state["rng"])

    # -- metadata and files ----------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "model": cfg.model, "model_options": self.model_options, "classes": list(self.bundle.classes),
            "normalization": self.normalization.to_dict(),
            "image_size": list(self.bundle.image_size) if self.bundle.image_size else None,
            "val_protocol": cfg.val_protocol, "eval_protocol": cfg.final_protocol,
            "data": {"name": cfg.data, "data_dir": cfg.data_dir, "val_split": cfg.val_split,
                     "split_seed": cfg.split_seed, "cache_dir": cfg.cache_dir, "train_subset": cfg.train_subset},
            "eval_weights": "ema" if self.ema else "model", "init": self.init_report,
            "step": self.step, "epoch": self.step / self.steps_per_epoch,
        }

    def resolved(self) -> dict[str, Any]:
        """What the config leaves to the data and machine: written beside it into config.json."""
        return {
            "iterations": self.total, "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.total / self.steps_per_epoch,
            "milestone_steps": milestone_steps(self.cfg.milestones, self.total)
            if self.cfg.schedule == "multistep" else None,
            "world_size": self.dist.world_size, "per_process_batch": self.per_rank,
            "micro_batch": self.micro, "accumulation_steps": self.accum,
            "warm_rule": self.cfg.uses_warm_rule, "speed": self.speed.describe(),
            "init": self.init_report, "frozen": self.frozen,
        }

    def _write_run_files(self) -> None:
        assert self.run_dir is not None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResNetError(f"cannot create the run folder {self.run_dir}: {e.strerror}") from None
        config_mod.save_json(self.cfg, self.run_dir / "config.json", extra=self.resolved())
        _json_write(self.run_dir / "classes.json", list(self.bundle.classes))
        _json_write(self.run_dir / "normalization.json", self.normalization.to_dict())
        _json_write(self.run_dir / "split.json", self.bundle.split)

    def train_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step": self.step, "epoch": self.step // self.steps_per_epoch,
            "batch_index": (self.step % self.steps_per_epoch) * self.accum, "best": self.best,
            "window": {"loss": float(self.window["loss"]), "errors": int(self.window["errors"]),
                       "count": self.window["count"], "time": self.window["time"]},
            "rng": self._gather_rng(), "time": self.run_time.state_dict(),
        }

    def _gather_rng(self) -> Any:
        """Every process's RNG states (a list by rank under DDP), so each rank resumes its own streams."""
        own = rng_state()
        if not self.dist.enabled:
            return own
        import torch.distributed as dist

        states: list[Any] = [None] * self.dist.world_size
        dist.all_gather_object(states, own)
        return states

    def save_last(self) -> None:
        self._check_finite(weights=True)
        state = self.train_state()  # collective under DDP: every rank takes part
        if self.dist.is_main:
            ck.save_checkpoint(self.run_dir / ck.LAST, self.meta(), self.model.state_dict(),
                               self.ema.state_dict() if self.ema else None, state)
        self.last_saved_step = self.step

    # -- the loop ------------------------------------------------------------------------------

    def _check_finite(self, weights: bool = False) -> None:
        """Stop on a NaN/Inf loss (the first such step is tracked on the device, without syncing each
        step) or, before a checkpoint is written, on NaN/Inf weights, so a saved checkpoint is always good."""
        bad = self.first_bad.clone()
        bad = torch.where(bad < 0, torch.tensor(2**62, device=bad.device), bad)
        bad = int(distributed.all_reduce(bad, distributed.dist.ReduceOp.MIN))
        what = "loss"
        if bad >= 2**62 and weights and ck.nonfinite_keys(self.model.state_dict()):
            bad, what = self.step - 1, "weights"
        if bad < 2**62:
            raise ResNetError(f"the {what} became NaN or infinite at step {bad + 1} (epoch "
                              f"{bad // self.steps_per_epoch + 1}); stopped, {self.saved_note()}. Try a lower --lr")

    def _train_step(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        lr = self.schedule.lr(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        for i, (x, y) in enumerate(batches):
            sync = self.dist.enabled and i < len(batches) - 1
            ctx = self.wrapped.no_sync() if sync else nullcontext()
            with ctx:
                with self.speed.autocast():
                    logits = self.forward(self.speed.prepare(x))
                    loss = self.criterion(at_least_float32(logits), y)
                scaled = loss / self.accum
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            with torch.no_grad():
                d = loss.detach()
                self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(d),
                                             torch.tensor(self.step, device=d.device), self.first_bad)
                self.window["loss"] += d * len(y)
                self.window["errors"] += (logits.detach().argmax(1) != y).sum()
                self.window["count"] += len(y)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        if self.speed.device.type == "cuda" and self._at_boundary():
            torch.cuda.synchronize(self.speed.device)  # so that the window's and the run's time cover their steps

    def _at_boundary(self) -> bool:
        """A step after which the loop logs, validates or saves (not counted as training time)."""
        return any(self.step % every == 0 for every in (self.cfg.log_every, self.eval_every, self.checkpoint_every)) \
            or self.step == self.total

    def _flush_window(self, stream: MetricsStream | None) -> None:
        w = self.window
        totals = distributed.all_reduce(torch.stack([w["loss"].double(), w["errors"].double(),
                                                     torch.tensor(float(w["count"]), device=w["loss"].device,
                                                                  dtype=torch.float64)]))
        elapsed = torch.tensor(w["time"], dtype=torch.float64, device=w["loss"].device)
        elapsed = float(distributed.all_reduce(elapsed, distributed.dist.ReduceOp.MAX))
        loss, errors, count = (float(v) for v in totals)
        self._check_finite()
        if count:
            train_error = errors / count
            if self.schedule.observe_train_error(self.step, train_error):
                logger.info("warm rule: training error %.1f%% < %.0f%% at step %d; LR back to %g", 100 * train_error,
                            100 * self.cfg.warm_until_error, self.step, self.schedule.lr(self.step))
            if stream is not None:
                stream.emit({"kind": "train", "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                             "loss": loss / count, "train_error": train_error,
                             "lr": self.schedule.lr(self.step - 1), "images_per_s": count / max(elapsed, 1e-9)})
        self.window = self._empty_window()

    def _validate(self, stream: MetricsStream | None) -> EvalResult | None:
        if self.val_loader is None:
            return None
        try:
            result = evaluate(self._eval_net(), self.val_loader, self.speed, quiet=self.quiet_bars,
                              desc="validating")
        except NonFiniteOutputs as e:  # before best/last are written: no checkpoint holds these weights
            raise ResNetError(f"validation at step {self.step}: {e}; stopped, {self.saved_note()}. "
                              "Try a lower --lr") from None
        if self.schedule.observe_val_error(result.top1_error):
            logger.info("validation error plateaued: LR now %g", self.schedule.lr(self.step))
        if stream is not None:
            stream.emit({"kind": "val", "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                         "val_error": result.top1_error, "val_top5_error": result.top5_error, "val_loss": result.loss,
                         # the run's wall time so far (all sessions), for error-against-time curves
                         "wall_s": round(self.run_time.wall_s, 3)})
        self.last_val = (self.step, result)
        if self.best is None or result.top1_error < self.best["val_error"]:
            self.best = {"val_error": result.top1_error, "step": self.step}
            if self.dist.is_main:
                weights = self.ema.state_dict() if self.ema else self.model.state_dict()
                ck.save_checkpoint(self.run_dir / ck.BEST, {**self.meta(), "val_error": result.top1_error,
                                                            "eval_weights": "model"}, weights)
        return result

    def _eval_net(self) -> nn.Module:
        if self.ema is None:
            return self.model
        assert self.eval_model is not None
        self.eval_model.load_state_dict(self.ema.state_dict())
        return self.eval_model

    def _open_stream(self) -> MetricsStream | None:
        if not self.dist.is_main:
            return None
        assert self.run_dir is not None
        # No bar when quiet or when stderr is not a terminal (logs, CI): one log line per validation instead.
        self.progress = ProgressBar(self.total, self.step, quiet=not bars_enabled(self.cfg.quiet))
        sinks: list[Any] = [LogFile(self.run_dir / "train.log", self.total), self.progress]
        if self.cfg.tensorboard and TensorBoard.available():
            sinks.append(TensorBoard(self.run_dir / "tensorboard"))
        return MetricsStream(self.run_dir / "metrics.jsonl", sinks)

    def _batches(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Groups of ``accum`` micro-batches from the current step on, epoch after epoch."""
        while True:
            epoch, index = divmod(self.step, self.steps_per_epoch)
            self.loader.set_epoch(epoch)
            it = iter(self.loader.start(epoch, index * self.accum))
            for _ in range(self.steps_per_epoch - index):
                yield [next(it) for _ in range(self.accum)]

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
        if self.dist.is_main:
            if resuming:
                truncate_after(self.run_dir / "metrics.jsonl", int(self._resume_state["step"]))
                if self.total != self.planned_before:
                    # First the summary, so that a crash in between leaves an unfinished run, never a finished one.
                    (self.run_dir / "summary.json").unlink(missing_ok=True)
                    config_mod.save_json(self.cfg, self.run_dir / "config.json", extra=self.resolved())
            else:
                self._write_run_files()
        # The clock starts here (data loading and model building are not the run's time), continuing the
        # totals of the checkpoint when resuming.
        self.run_time = RunTime.from_state(self._resume_state.get("time") if resuming else None)
        if resuming:
            self._restore(self._resume_state)
            self.last_saved_step = self.step
            self._resume_state = None
        cfg = self.cfg
        if self.dist.is_main:
            self._log_plan(resuming)
        stream = self._open_stream()
        try:
            with stop_signals() as flag:
                batches = self._batches()
                while self.step < self.total:
                    tick = time.perf_counter()  # images/s counts data loading, not validation or saving
                    self._train_step(next(batches))
                    took = time.perf_counter() - tick
                    self.window["time"] += took
                    self.run_time.add_step(took)
                    if self.progress is not None:
                        self.progress.advance(self.step)
                    if self.step % cfg.log_every == 0 or self.step == self.total:
                        self._flush_window(stream)
                    if self.step % self.eval_every == 0 or self.step == self.total:
                        self._validate(stream)
                    if self.step % self.checkpoint_every == 0 or self.step == self.total:
                        self.save_last()
                    if self._stop_requested(flag):
                        self.save_last()
                        nproc = f" --nproc {self.dist.world_size}" if self.dist.enabled else ""
                        raise Interrupted(f"stopped at step {self.step}/{self.total}; checkpoint saved. Resume with: "
                                          f"resnet train --resume {self.run_dir}{nproc}")
            summary = self._finish()
        finally:
            if stream is not None:
                stream.close()
        return RunResult(self.run_dir, summary)

    def saved_note(self) -> str:
        """Where the last checkpoint is, for error lines (every saved checkpoint was checked finite)."""
        return (f"the last good checkpoint is {self.run_dir / ck.LAST} (step {self.last_saved_step})"
                if self.last_saved_step is not None else "no checkpoint was saved")

    def _stop_requested(self, flag: dict[str, bool]) -> bool:
        if not self.dist.enabled:
            return flag["stop"]
        if self.step % self.cfg.log_every and self.step != self.total:
            return False  # ranks agree on stopping only at log steps, to keep collectives in step
        t = torch.tensor(int(flag["stop"]), device=self.speed.device)
        return bool(distributed.all_reduce(t, distributed.dist.ReduceOp.MAX))

    def _log_plan(self, resuming: bool) -> None:
        cfg = self.cfg
        logger.info("%s run folder: %s", "resuming" if resuming else "new", self.run_dir)
        if resuming and self.total != self.planned_before:
            logger.info("new length: %d iterations instead of %d; the LR schedule is recomputed for it (%s); the %d "
                        "steps taken are kept, step %d runs at LR %g", self.total, self.planned_before,
                        self._schedule_text(), self.step, self.step + 1, self.schedule.lr(self.step))
        if resuming and self.run_time.steps < self.step:
            logger.info("%s predates time keeping: wall and training time count from step %d", ck.LAST, self.step)
        logger.info("%s on %s: %s train / %s val images, %d classes; %d iterations (%.1f epochs of %d steps)",
                    cfg.model, cfg.data, _size(self.bundle.train), _size(self.bundle.val), self.bundle.num_classes,
                    self.total, self.total / self.steps_per_epoch, self.steps_per_epoch)
        accum = (f", gradient accumulation over {self.accum} micro-batches of {self.micro} (BN sees {self.micro})"
                 if self.accum > 1 else "")
        logger.info("global batch %d = %d process(es) x %d%s; LR %g for that batch", cfg.batch_size,
                    self.dist.world_size, self.per_rank, accum, cfg.lr)
        logger.info("speed: %s", self.speed.describe())

    def _schedule_text(self) -> str:
        cfg = self.cfg
        if cfg.schedule == "multistep":
            return f"milestones {', '.join(f'{m:g}' for m in cfg.milestones)} of it: steps " \
                   f"{', '.join(map(str, milestone_steps(cfg.milestones, self.total)))}"
        if cfg.schedule in ("cosine", "linear"):
            return f"{cfg.schedule} decay reaching 0 at step {self.total}"
        return f"{cfg.schedule}: it does not depend on the length"

    def _finish(self) -> dict[str, Any]:
        wall = self.run_time.wall_s  # the final evaluation below is not part of the loop's time
        final = None
        if self.val_loader is not None:
            from resnet.data import make_eval_loader

            if self.cfg.final_protocol != self.cfg.val_protocol:
                loader = make_eval_loader(self.bundle.val, self.micro, protocol=self.cfg.final_protocol,
                                          normalization=self.normalization, device=self.speed.device,
                                          workers=self.cfg.workers)
                final = evaluate(self._eval_net(), loader, self.speed, quiet=self.quiet_bars, desc="final evaluation")
            elif self.last_val is not None and self.last_val[0] == self.step:
                final = self.last_val[1]  # the same weights, images and protocol were just validated
            else:
                final = evaluate(self._eval_net(), self.val_loader, self.speed, quiet=self.quiet_bars,
                                 desc="final evaluation")
        summary = {
            "run_dir": str(self.run_dir), "model": self.cfg.model, "data": self.cfg.data,
            "params": sum(p.numel() for p in self.model.parameters()),
            "iterations": self.total, "epochs": self.total / self.steps_per_epoch,
            "wall_time_s": wall, "train_time_s": self.run_time.train_s,
            "images_per_s": self.run_time.images_per_s(self.cfg.batch_size), "timed_iterations": self.run_time.steps,
            "final": {"protocol": self.cfg.final_protocol, **final.to_dict()} if final else None,
            "best": self.best,
            "checkpoints": {"last": ck.LAST, "best": ck.BEST if self.best else None},
        }
        if self.dist.is_main:
            _json_write(self.run_dir / "summary.json", summary)
        return summary


def _size(split: Any) -> str:
    return "no" if split is None else str(len(split))


def _fit(trainer: Trainer, folder: RunFolder | None) -> RunResult:
    """Fit, with a stuck or dead peer process reported as one line after ``--dist-timeout``."""
    with distributed.timeout_as_error(trainer.dist, trainer.cfg.dist_timeout, trainer.saved_note):
        return trainer.fit(folder)


def train(cfg: TrainConfig | None = None, *, resume: str | Path | None = None, overwrite: bool = False,
          iterations: int | None = None, epochs: float | None = None) -> RunResult:
    """Train with ``cfg`` (default: the embedded digits job), or continue the run in ``resume``.

    A new run refuses a run folder that already holds a run unless ``overwrite`` (its files are then
    deleted first); a folder another training is using is always refused. A resumed run that has
    finished is left untouched (``finished_earlier``) unless ``iterations`` or ``epochs`` give it a
    new length: the LR schedule is then recomputed for that length and training continues from the
    steps already taken.
    """
    if resume is None and (iterations is not None or epochs is not None):
        raise TypeError("iterations and epochs change the length of a resumed run; a new run takes them in cfg")
    is_main = distributed.from_env().is_main
    try:
        if resume is not None:
            run_dir = Path(resume)
            if iterations is None and epochs is None and (summary := finished_summary(run_dir)) is not None:
                return RunResult(run_dir, summary, finished_earlier=True)
            with RunFolder.claim(run_dir, resume=True) if is_main else nullcontext() as folder:
                return _fit(Trainer.resume(run_dir, iterations, epochs), folder)
        cfg = cfg or TrainConfig()
        new_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg) if is_main else None
        with RunFolder.claim(new_dir, overwrite=overwrite) if is_main else nullcontext() as folder:
            return _fit(Trainer(cfg, new_dir), folder)
    finally:
        distributed.shutdown()
