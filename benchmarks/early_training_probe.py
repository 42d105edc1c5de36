"""What happens in the first steps of a deep CIFAR ResNet at LR 0.1 (issue 13).

Runs the project's own model, data pipeline and optimizer for the first ``--steps`` steps of the
cifar-paper recipe (constant LR, so the measurement is about the start alone), once per variant,
all variants from the same initial weights and the same batches, and prints per step:

- the loss and training error of the batch,
- the gradient norm of the stem, of each stage and of the classifier,
- at step 0, the std of the last block's output and the first batch's loss,
- how alive the network is: the spread of the logits *across images* (0 when every image gets the
  same prediction, the collapsed state whose loss is the entropy of the class prior, ln 10 = 2.303)
  and the fraction of the pooled features that are exactly 0 (dead ReLUs).

    python benchmarks/early_training_probe.py --data-dir /tmp/data/cifar10-jpg/train \
        --model resnet56 --steps 40 --variants paper,zero-init,warmup

A variant is ``paper`` (the recipe as the paper gives it), ``zero-init`` (the last BN gamma of each
residual branch at 0, Goyal et al. 2017), ``warmup`` (LR from 0 to 0.1 linearly over ``--warmup``
steps), ``lr0.05`` / ``lr0.02`` (a constant lower LR).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

import resnet
from resnet.data import fit_normalization, load_dataset, make_train_loader

VARIANTS = ("paper", "zero-init", "warmup", "lr0.05", "lr0.02")


def stage_of(name: str) -> str:
    if name.startswith("fc"):
        return "fc"
    return name.split(".")[0] if name.startswith("layer") else "stem"


@torch.no_grad()
def initial_row(model: torch.nn.Module, variant: str, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Step 0, before any update: the std of the last block's output (the residual stream, which grows
    with depth unless each branch starts at zero) and the loss of the first batch."""
    outputs: list[torch.Tensor] = []
    last_block = [m for m in model.modules() if hasattr(m, "downsample")][-1]
    hook = last_block.register_forward_hook(lambda m, i, o: outputs.append(o))
    loss = F.cross_entropy(model(x), y)
    hook.remove()
    return {"variant": variant, "step": 0, "loss": float(loss), "last_block_std": float(outputs[0].std())}


def run(
    model_name: str, variant: str, batches: list[tuple[torch.Tensor, torch.Tensor]], warmup: int, seed: int
) -> list[dict]:
    torch.manual_seed(seed)
    model = resnet.create_model(model_name, zero_init_residual=variant == "zero-init").train()
    base_lr = {"lr0.05": 0.05, "lr0.02": 0.02}.get(variant, 0.1)
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=0.9, weight_decay=1e-4)
    pooled: list[torch.Tensor] = []
    model.avgpool.register_forward_hook(lambda m, i, o: pooled.append(o.detach().flatten(1)))
    rows = [initial_row(model, variant, *batches[0])]
    for step, (x, y) in enumerate(batches, 1):
        lr = base_lr * min(1.0, step / warmup) if variant == "warmup" else base_lr
        for g in opt.param_groups:
            g["lr"] = lr
        pooled.clear()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sq: dict[str, float] = {}
        for name, p in model.named_parameters():
            if p.grad is not None:
                sq[stage_of(name)] = sq.get(stage_of(name), 0.0) + float(p.grad.pow(2).sum())
        opt.step()
        feats = pooled[0]
        rows.append(
            {
                "variant": variant,
                "step": step,
                "lr": lr,
                "loss": float(loss.detach()),
                "error": float((logits.argmax(1) != y).float().mean()),
                "grad": {k: round(v**0.5, 4) for k, v in sq.items()},
                "logit_spread": float(logits.detach().std(0).mean()),
                "dead_features": float((feats == 0).float().mean()),
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--model", default="resnet56")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--variants", default="paper,zero-init,warmup")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON lines file")
    args = p.parse_args()
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}")

    bundle = load_dataset("imagefolder", args.data_dir, val_split=5000, split_seed=0)
    norm = fit_normalization(bundle, "pixel-mean")
    loader = make_train_loader(
        bundle,
        128,
        augment="cifar",
        normalization=norm,
        device=torch.device("cpu"),
        seed=args.seed,
        rank=0,
        world_size=1,
        workers=0,
        drop_last=True,
    )
    loader.set_epoch(0)
    it = iter(loader.start(0, 0))
    batches = [next(it) for _ in range(args.steps)]

    out = args.out.open("w") if args.out else None
    for variant in variants:
        for row in run(args.model, variant, batches, args.warmup, args.seed):
            line = json.dumps(row)
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()


if __name__ == "__main__":
    main()
