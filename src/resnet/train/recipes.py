"""The paper's recipes (and a few beyond it) as presets of :class:`~resnet.train.config.TrainConfig`.

Each recipe names only what it changes from the config's defaults, which are the ``digits`` recipe;
``resnet train --recipe NAME`` starts from one, and a TOML file or flags change it further.
"""

from __future__ import annotations

from typing import Any

# What each recipe changes from the defaults of TrainConfig (the ``digits`` recipe).
RECIPES: dict[str, dict[str, Any]] = {
    # The embedded main job: 1,797 8x8 digits, 330 iterations (timing: `resnet train --help`).
    "digits": {},
    # Section 4.2: 64k iterations of batch 128, LR 0.1 / 10 at 32k and 48k, 45k/5k split.
    "cifar-paper": dict(
        data="cifar10",
        val_split=5000,
        augment="cifar",
        normalization="pixel-mean",
        iterations=64000,
        epochs=None,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="multistep",
        milestones=(0.5, 0.75),
        gamma=0.1,
        warm_rule="auto",
        val_protocol="single",
        final_protocol="single",
        log_every=50,
    ),
    # Section 3.4: batch 256, LR 0.1 / 10 on validation plateau, up to 60e4 iterations, 10-crop test.
    "imagenet-paper": dict(
        model="resnet18",
        data="imagefolder",
        val_split=None,
        augment="imagenet",
        normalization="pixel-mean",
        iterations=600000,
        epochs=None,
        batch_size=256,
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="plateau",
        plateau_patience=3,
        gamma=0.1,
        warm_rule="off",
        val_protocol="center",
        final_protocol="ten-crop",
        log_every=100,
    ),
    # Beyond the paper: the paper's CIFAR networks trained for time to accuracy, not for the last decimal.
    # A short schedule (a warm-up, then a straight line to 0, the best decay under a fixed budget),
    # label smoothing, weight decay 5e-4 on weights only, channels-last, bf16 wherever it is native, and
    # a final test of each image with its mirror image.
    "cifar-fast": dict(
        data="cifar10",
        val_split=5000,
        augment="cifar",
        normalization="channel",
        iterations=None,
        epochs=24.0,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        wd_bn_bias=False,
        label_smoothing=0.1,
        schedule="linear",
        warmup_iterations=200,
        warm_rule="off",
        precision="native",
        channels_last="on",
        val_protocol="single",
        final_protocol="flip",
        log_every=50,
        eval_every=0,
    ),
    # Transfer to your own images from --init weights: their normalisation, a tenth of the from-scratch LR,
    # a short cosine schedule, weight decay on weights only (not on BN parameters and biases).
    "finetune": dict(
        data="imagefolder",
        normalization="init",
        epochs=5.0,
        iterations=None,
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
        wd_bn_bias=False,
        schedule="cosine",
        warm_rule="off",
    ),
}
