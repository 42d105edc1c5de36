"""The one checkpoint format and reading weights from any file (layer 4: below weights and training).

- :mod:`~resnet.checkpoints.format`: save, load and resolve our safetensors checkpoints.
- :mod:`~resnet.checkpoints.meta`: what a checkpoint's metadata may contain, checked before use.
- :mod:`~resnet.checkpoints.state_dict`: model weights from our files and other tools', strict loading.
"""

from resnet.checkpoints.format import (
    BEST,
    FORMAT,
    LAST,
    Checkpoint,
    is_checkpoint,
    load_checkpoint,
    resolve_path,
    save_checkpoint,
)
from resnet.checkpoints.meta import validate_meta
from resnet.checkpoints.state_dict import listed, load_weights, nonfinite_keys, read_state_dict, state_mismatch

__all__ = [
    "BEST",
    "FORMAT",
    "LAST",
    "Checkpoint",
    "is_checkpoint",
    "listed",
    "load_checkpoint",
    "load_weights",
    "nonfinite_keys",
    "read_state_dict",
    "resolve_path",
    "save_checkpoint",
    "state_mismatch",
    "validate_meta",
]
