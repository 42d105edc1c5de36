"""Parameters, multiply-adds and output sizes per stage: the paper's Table 1, from the models.

Multiply-adds are counted as the paper counts them: convolutions (shortcut projections included)
and fully connected layers; BN, ReLU, pooling and additions are left out. One multiply-add of a
convolution is one weight applied at one output position, so a conv costs
``H_out * W_out * C_out * (C_in / groups) * k_h * k_w``.

Counting runs the network on PyTorch's ``meta`` device: shapes are propagated, nothing is computed,
so even ResNet-1202 is summarised instantly.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from resnet.markdown import markdown_table
from resnet.models import FeatureExtractor, build_model, get_spec, list_models


@dataclass
class StageSummary:
    """One row of Table 1: a stage (or the stem / the classifier) of the network."""

    name: str  # the paper's layer name: conv1, conv2_x, ..., fc
    module: str  # the attribute path(s) in the model: conv1, layer1, ...
    output_shape: list[int]  # C, H, W (or classes for fc)
    blocks: int
    layers: str  # the block's layers in the paper's notation, e.g. "[3x3, 64; 3x3, 64] x 2"
    params: int
    macs: int


@dataclass
class ModelSummary:
    model: str
    input_size: list[int]
    params: int
    macs: int
    stages: list[StageSummary] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _stage_of(name: str) -> str:
    """The paper's row for a top-level attribute (the max pool belongs to conv2_x, as in Table 1)."""
    top = name.split(".", 1)[0]
    if top in ("conv1", "bn1", "relu"):
        return "conv1"
    if top == "maxpool":
        return "conv2_x"
    if top.startswith("layer"):
        return f"conv{int(top[5:]) + 1}_x"
    return "fc"


def _conv_macs(conv: nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = conv.kernel_size
    return out.shape[2] * out.shape[3] * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw


def _describe_block(stage: nn.Sequential) -> str:
    """The first block's residual branch as the paper writes it: ``[1x1, 64; 3x3, 64; 1x1, 256] x 3``."""
    first = stage[0]
    convs = [m for n, m in first.named_children() if isinstance(m, nn.Conv2d)]
    parts = []
    for c in convs:
        group = f", {c.groups} groups" if c.groups > 1 else ""
        parts.append(f"{c.kernel_size[0]}x{c.kernel_size[1]}, {c.out_channels}{group}")
    return f"[{'; '.join(parts)}] x {len(stage)}"


def summarize(model: nn.Module, input_size: tuple[int, int], *, name: str = "", in_channels: int = 3) -> ModelSummary:
    """Table 1's view of ``model`` for one ``(H, W)`` input: per-stage output shape, params and MACs.

    ``model`` may live on any device; it is copied to the meta device, so nothing is computed.
    """
    meta = _to_meta(model)
    stages: dict[str, StageSummary] = {}
    macs: dict[str, int] = {}
    hooks = []
    reached = [-1]  # the furthest row the forward has reached, in the rows' (= the forward's) order

    def row(stage: str, module_name: str) -> StageSummary:
        if stage not in stages:
            stages[stage] = StageSummary(stage, module_name, [], 0, "", 0, 0)
            macs[stage] = 0
        elif module_name not in stages[stage].module.split("+"):
            stages[stage].module += f"+{module_name}"
        return stages[stage]

    for top_name, top in meta.named_children():
        if top is None:
            continue
        stage = _stage_of(top_name)
        entry = row(stage, top_name)
        entry.params += sum(p.numel() for p in top.parameters())
        if isinstance(top, nn.Sequential) and top_name.startswith("layer"):
            entry.blocks = len(top)
            entry.layers = _describe_block(top)

        def record_shape(_m: nn.Module, _i: object, out: torch.Tensor, entry: StageSummary = entry) -> None:
            # A shared module called again later (the ReLU that pre-activation nets also apply after
            # final_bn) must not overwrite an earlier row's shape.
            row_index = list(stages).index(entry.name)
            if row_index >= reached[0]:
                reached[0] = row_index
                entry.output_shape = list(out.shape[1:])

        hooks.append(top.register_forward_hook(record_shape))
        for m in top.modules():
            if isinstance(m, nn.Conv2d):
                hooks.append(
                    m.register_forward_hook(
                        lambda mod, _i, out, s=stage: macs.__setitem__(s, macs[s] + _conv_macs(mod, out))
                    )
                )
            elif isinstance(m, nn.Linear):
                hooks.append(
                    m.register_forward_hook(
                        lambda mod, _i, _o, s=stage: macs.__setitem__(s, macs[s] + mod.in_features * mod.out_features)
                    )
                )
    conv1 = getattr(meta, "conv1", None)
    if isinstance(conv1, nn.Conv2d):
        stages[
            "conv1"
        ].layers = f"{conv1.kernel_size[0]}x{conv1.kernel_size[1]}, {conv1.out_channels}, stride {conv1.stride[0]}"
    fc = getattr(meta, "fc", None)
    if isinstance(fc, nn.Linear):
        stages["fc"].layers = f"average pool, {fc.out_features}-d fc"
    was_training = meta.training
    try:
        with torch.no_grad():
            meta.eval()(torch.empty(1, in_channels, *input_size, device="meta"))
    finally:
        meta.train(was_training)
        for h in hooks:
            h.remove()
    for stage, entry in stages.items():
        entry.macs = macs[stage]
    rows = list(stages.values())
    return ModelSummary(
        name, list(input_size), sum(p.numel() for p in model.parameters()), sum(r.macs for r in rows), rows
    )


def _to_meta(model: nn.Module) -> nn.Module:
    """``model`` itself if it already lives on the meta device, else a structural copy there."""
    if all(p.is_meta for p in model.parameters()):
        return model
    return copy.deepcopy(model).to("meta")


def model_summary(name: str, input_size: tuple[int, int] | None = None, **options: Any) -> ModelSummary:
    """Build ``name`` on the meta device (no memory, no compute) and summarise it."""
    spec = get_spec(name)
    size = input_size or (spec.input_size, spec.input_size)
    with torch.device("meta"):
        model = build_model(name, **options)
    return summarize(model, size, name=name, in_channels=int(options.get("in_channels", 3)))


def feature_summary(name: str, input_size: tuple[int, int] | None = None, **options: Any) -> dict:
    """Each stage's feature map (``features_only``) at ``input_size``, its size measured by a meta-device run."""
    spec = get_spec(name)
    size = input_size or (spec.input_size, spec.input_size)
    with torch.device("meta"):
        extractor = build_model(name, features_only=True, **options)
    assert isinstance(extractor, FeatureExtractor)  # what features_only=True builds
    with torch.no_grad():
        maps = extractor.eval()(torch.empty(1, int(options.get("in_channels", 3)), *size, device="meta"))
    features = [
        {"name": f.name, "layer": f.layer, "channels": f.channels, "stride": f.stride, "output_size": list(m.shape[2:])}
        for f, m in zip(extractor.feature_info, maps, strict=True)
    ]
    return {"model": name, "input_size": list(size), "features": features}


def format_feature_table(summary: dict) -> str:
    """A plain-text table of :func:`feature_summary`: what ``return_layers`` / ``in_channels_list`` need."""
    rows = [("stage", "layer", "channels", "stride", "output")]
    rows += [
        (f["name"], f["layer"], str(f["channels"]), str(f["stride"]), "x".join(map(str, f["output_size"])))
        for f in summary["features"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{summary['model']} feature maps at {summary['input_size'][0]}x{summary['input_size'][1]}"]
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_table(summary: ModelSummary) -> str:
    """A plain-text table of one summary, stage by stage."""
    header = ("layer", "module", "output", "blocks", "params", "mult-adds")
    rows = [header]
    for s in summary.stages:
        rows.append(
            (s.name, s.module, "x".join(map(str, s.output_shape)), s.layers or "-", f"{s.params:,}", _fmt_count(s.macs))
        )
    rows.append(("total", "", "", "", f"{summary.params:,}", f"{_fmt_count(summary.macs)} ({summary.macs:.3e})"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = [f"{summary.model} at {summary.input_size[0]}x{summary.input_size[1]}"]
    for i, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0 or i == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


TABLE1_DEPTHS = (18, 34, 50, 101, 152)


def table1() -> str:
    """The paper's Table 1 for the ImageNet family, generated from the models (stride on the 1x1)."""
    summaries = [model_summary(f"resnet{d}") for d in TABLE1_DEPTHS]
    names = [s.name for s in summaries[0].stages]
    header = ["layer name", "output size"] + [f"{d}-layer" for d in TABLE1_DEPTHS]
    rows = [header]
    for i, stage in enumerate(names):
        shape = summaries[-1].stages[i].output_shape
        size = f"{shape[1]}x{shape[2]}" if len(shape) == 3 else "1x1"
        rows.append([stage, size] + [s.stages[i].layers for s in summaries])
    rows.append(["FLOPs", ""] + [f"{s.macs / 1e9:.1f}x10^9" for s in summaries])
    rows.append(["params", ""] + [f"{s.params / 1e6:.1f}M" for s in summaries])
    return markdown_table(rows)


def all_models_table(include_beyond_paper: bool = True) -> str:
    """Every registered network with its parameters and multiply-adds at its native input size."""
    rows = [["model", "family", "input", "params", "mult-adds", "note"]]
    for name in list_models(include_beyond_paper=include_beyond_paper):
        spec = get_spec(name)
        if "depth" in spec.options:  # the generic builders have no depth of their own
            continue
        s = model_summary(name)
        rows.append(
            [
                f"`{name}`",
                spec.family,
                f"{spec.input_size}x{spec.input_size}",
                f"{s.params:,}",
                f"{s.macs / 1e9:.3f}G" if s.macs >= 1e8 else f"{s.macs / 1e6:.1f}M",
                ("beyond the paper: " if spec.beyond_paper else "") + spec.description,
            ]
        )
    return markdown_table(rows)
