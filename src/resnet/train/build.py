"""Building a run from its config: batch arithmetic, data, normalisation, model, optimizer, loaders, schedule.

Everything here happens before the first step and is the same for a new and a resumed run, except
where noted: a resumed run takes its normalisation, architecture options, weights and test view from
its ``last`` checkpoint and never reads ``--init`` again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from resnet import checkpoints as ck
from resnet.data import (
    DataBundle,
    EvalLoader,
    Normalization,
    TrainLoader,
    fit_normalization,
    load_dataset,
    make_eval_loader,
    make_train_loader,
)
from resnet.data.transforms import PAPER_VIEW, ImageNetView, check_protocol
from resnet.device import Speed
from resnet.errors import ResNetError
from resnet.models import build_model
from resnet.train import distributed
from resnet.train.config import TrainConfig
from resnet.train.ema import EMA
from resnet.train.freeze import apply_freezing, head_lr_scale, is_head
from resnet.train.schedule import build_schedule
from resnet.train.time_limit import PROVISIONAL_EPOCHS
from resnet.train.warm_start import (
    ARCHITECTURE_OPTIONS,
    apply_init,
    init_model_options,
    init_normalization,
    input_size_note,
    resolve_init,
)

logger = logging.getLogger(__name__)


@dataclass
class Batches:
    """How the global batch is split: over processes, then into micro-batches accumulated into one step."""

    per_rank: int
    micro: int

    @property
    def accum(self) -> int:
        return self.per_rank // self.micro


@dataclass
class Run:
    """Everything one training run is built from; :class:`resnet.train.trainer.Trainer` runs it."""

    batches: Batches
    bundle: DataBundle
    normalization: Normalization
    model_options: dict[str, Any]
    model: nn.Module  # the plain module: what is saved and evaluated
    wrapped: nn.Module  # DDP around the model under torchrun, else the model
    forward: nn.Module  # what the step calls: ``wrapped``, compiled with --compile on
    frozen: Any
    ema: EMA | None
    eval_model: nn.Module | None  # where the EMA weights are evaluated
    init_report: dict[str, Any] | None
    optimizer: torch.optim.SGD
    scaler: torch.amp.GradScaler | None
    criterion: nn.Module
    loader: TrainLoader
    val_loader: EvalLoader | None
    eval_view: ImageNetView | None  # the --init weights' test view on image files; None: the paper's
    steps_per_epoch: int
    total: int
    schedule: Any
    eval_every: int
    checkpoint_every: int


def split_batch(cfg: TrainConfig, world_size: int) -> Batches:
    if cfg.batch_size % world_size:
        raise ResNetError(f"option 'batch-size': {cfg.batch_size} is not divisible by the {world_size} processes")
    per_rank = cfg.batch_size // world_size
    micro = min(cfg.micro_batch or per_rank, per_rank)
    if per_rank % micro:
        raise ResNetError(f"option 'micro-batch': {micro} does not divide the per-process batch {per_rank}")
    return Batches(per_rank, micro)


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
    return [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            "lr_scale": head_scale if head else 1.0,
        }
        for (head, no_decay), params in sorted(groups.items(), key=lambda item: item[0])
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """The paper's SGD with momentum; ``foreach`` updates all tensors in a few kernels (the same numbers
    as the per-tensor loop, which is PyTorch's default on CPU)."""
    return torch.optim.SGD(param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum, foreach=True)


def _load_data(cfg: TrainConfig, quiet: bool) -> DataBundle:
    # The config holds counts as int and fractions as float (option_types.val_split_value).
    bundle = load_dataset(
        cfg.data,
        cfg.data_dir,
        val_split=cfg.val_split,
        split_seed=cfg.split_seed,
        cache_dir=cfg.cache_dir,
        skip_bad_images=cfg.skip_bad_images,
        download=cfg.download,
        quiet=quiet,
        train_subset=cfg.train_subset,
    )
    if bundle.num_classes < 2:  # one class is always right: "0% error" would mean nothing
        raise ResNetError(
            f"option 'data-dir': {cfg.data_dir} has {bundle.num_classes} class "
            f"({', '.join(bundle.classes)}); training needs at least 2 class folders"
        )
    return bundle


def _normalization(
    cfg: TrainConfig, bundle: DataBundle, stored: dict[str, Any] | None, resume_from: ck.Checkpoint | None, quiet: bool
) -> Normalization:
    """The checkpoint's when resuming; ``stored``: the warm-start weights' own; else fitted on the training set."""
    if resume_from is not None:
        return Normalization.from_dict(resume_from.meta["normalization"])
    if stored is not None:
        return Normalization.from_dict(stored)
    return fit_normalization(bundle, cfg.normalization, quiet=quiet)


def _eval_view(init: Any, bundle: DataBundle, resume_from: ck.Checkpoint | None) -> ImageNetView | None:
    """How the run's image files are cut for testing: the checkpoint's view when resuming; else the --init
    weights' own (their publisher's resize, crop, interpolation), if they carry one. None (the paper's)
    otherwise, and for in-memory images, which are tested at their own size."""
    if resume_from is not None:
        saved = resume_from.meta.get("eval_view")
        return ImageNetView.from_dict(saved) if saved is not None else None
    if init is None or bundle.image_size is not None or not init[1].get("view"):
        return None
    return ImageNetView.from_dict(init[1]["view"])


def _model(
    cfg: TrainConfig, bundle: DataBundle, init: Any, resume_from: ck.Checkpoint | None
) -> tuple[nn.Module, dict[str, Any], dict[str, Any] | None]:
    """The network with its options and weights: the checkpoint's, the warm start's, or the paper's init."""
    options = model_options(cfg, bundle.num_classes, bundle.in_channels)
    if init is not None:
        options = init_model_options(init[1], options)
    elif resume_from is not None:  # e.g. stride_on 3x3 taken from --init weights at the start
        saved = resume_from.meta.get("model_options") or {}
        options.update({k: saved[k] for k in ARCHITECTURE_OPTIONS if k in saved})
    model = build_model(cfg.model, **options)
    report = resume_from.meta.get("init") if resume_from is not None else None
    if resume_from is not None:
        ck.load_weights(model, resume_from.model, name=cfg.model)
    elif init is not None:
        report = apply_init(
            model,
            *init,
            classes=list(bundle.classes),
            head=cfg.init_head,
            non_strict=cfg.init_non_strict,
            model_name=cfg.model,
        )
    return model, options, report


def build_run(
    cfg: TrainConfig,
    dist: distributed.DistInfo,
    speed: Speed,
    resume_from: ck.Checkpoint | None,
    quiet: bool,
    planned: int | None = None,
    length_changes: Sequence[Sequence[int]] = (),
) -> Run:
    """``quiet``: no progress bars while data is prepared (--quiet, or a DDP rank other than 0);
    ``planned``: the length a time-limited run planned (a resume keeps it); ``length_changes``: how its
    plan changed on the way (``time_plan.changes``), which its schedule follows."""
    batches = split_batch(cfg, dist.world_size)
    # Read --init before the data, so a wrong file fails at once; a resumed run never reads it again.
    init = resolve_init(cfg.init, cfg.model) if cfg.init and resume_from is None else None
    # --normalization init takes the weights' own: a bare state dict, which has none, fails here, before the data.
    stored = init_normalization(init[1]) if init is not None and cfg.normalization == "init" else None
    torch.manual_seed(cfg.seed)
    bundle = _load_data(cfg, quiet)
    size_note = input_size_note(init[1], bundle.image_size, cfg.augment) if init is not None else None
    if size_note:
        logger.warning(size_note)
    normalization = _normalization(cfg, bundle, stored, resume_from, quiet)
    eval_view = _eval_view(init, bundle, resume_from)
    model, options, init_report = _model(cfg, bundle, init, resume_from)
    if size_note and init_report is not None:
        init_report["input_size"] = size_note  # for train.log and config.json

    device = speed.device
    model = model.to(device)
    if speed.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks memory_format
    if cfg.sync_bn and dist.enabled:
        model = distributed.convert_sync_batchnorm(model, device)
    # Before the optimizer and DDP, which both take the trainable parameters only.
    frozen = apply_freezing(model, cfg.freeze_until, cfg.linear_probe, cfg.freeze_bn)
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    if resume_from is not None and resume_from.ema is not None and ema is not None:
        ema.load_state_dict(resume_from.ema)
    eval_model = build_model(cfg.model, **options).to(device) if ema else None
    if dist.enabled:
        ids = [device.index] if device.type == "cuda" else None
        wrapped: nn.Module = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    else:
        wrapped = model
    forward: nn.Module = torch.compile(wrapped) if speed.compile else wrapped  # type: ignore[assignment]

    loader = make_train_loader(
        bundle,
        batches.micro,
        augment=cfg.augment,
        normalization=normalization,
        device=device,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        workers=cfg.workers,
        drop_last=True,
        cutout=cfg.cutout,
        mixup=cfg.mixup,
        cutmix=cfg.cutmix,
    )
    steps_per_epoch = len(loader) // batches.accum
    if steps_per_epoch < 1:
        raise ResNetError(
            f"option 'batch-size': {cfg.batch_size} is larger than the training set ({len(bundle.train)} images)"
        )
    if cfg.iterations:
        total = cfg.iterations
    elif cfg.epochs is not None:
        total = math.ceil(cfg.epochs * steps_per_epoch)
    elif planned is not None:
        total = planned
    else:  # --time-limit: the trainer fixes the length after the first steps (resnet.train.time_limit)
        assert cfg.time_limit is not None  # the config is checked: --iterations, --epochs or --time-limit
        total = PROVISIONAL_EPOCHS * steps_per_epoch
    eval_batch = max(batches.micro, 256) if bundle.kind == "tensor" else batches.micro
    val_loader = (
        make_eval_loader(
            bundle.val,
            eval_batch,
            protocol=cfg.val_protocol,
            normalization=normalization,
            device=device,
            workers=cfg.workers,
            view=eval_view or PAPER_VIEW,
        )
        if bundle.val is not None
        else None
    )
    check_protocol(cfg.final_protocol, bundle.image_size)  # refused now, not after training
    eval_every = cfg.eval_every or steps_per_epoch
    return Run(
        batches=batches,
        bundle=bundle,
        normalization=normalization,
        model_options=options,
        model=model,
        wrapped=wrapped,
        forward=forward,
        frozen=frozen,
        ema=ema,
        eval_model=eval_model,
        init_report=init_report,
        optimizer=make_optimizer(model, cfg),
        scaler=torch.amp.GradScaler(device.type) if speed.precision == "fp16" else None,
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        loader=loader,
        val_loader=val_loader,
        eval_view=eval_view,
        steps_per_epoch=steps_per_epoch,
        total=total,
        schedule=build_schedule(cfg, total, length_changes),
        eval_every=eval_every,
        checkpoint_every=cfg.checkpoint_every or eval_every,
    )
