"""Training with the paper's recipes.

``train(TrainConfig(...))`` runs one training job (``resnet train``); ``train(resume=run_dir)`` continues
one. Recipes are presets of :class:`TrainConfig` (``RECIPES``); ``resolve`` merges a recipe, a TOML file
and command-line values into one config.
"""

from resnet.train.config import TrainConfig, resolve
from resnet.train.recipes import RECIPES
from resnet.train.trainer import RunResult, Trainer, train

__all__ = ["RECIPES", "TrainConfig", "resolve", "RunResult", "Trainer", "train"]
