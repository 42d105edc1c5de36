"""torch.hub entry points: every network of ``resnet.list_models()``, as torchvision's hubconf offers its own.

    torch.hub.load("<owner>/<repo>", "resnet50", weights="torchvision")      # published ImageNet weights
    torch.hub.load("<owner>/<repo>", "resnet56", num_classes=100)            # the paper's initialisation
    torch.hub.load("path/to/checkout", "resnet20", source="local")           # a local checkout

Each entry point takes ``create_model``'s keywords (``weights``, ``num_classes``, ``shortcut``,
``stride_on``, ...). The hub runs this file from a checkout of the repository, not an installed
package, so the package's ``src/`` folder is put on the import path first.
"""

from __future__ import annotations

import os as _os
import sys as _sys
from collections.abc import Callable as _Callable
from typing import Any as _Any

# Import names the hub checks before it loads anything (it cannot install them).
dependencies = ["torch", "numpy", "safetensors", "PIL", "tqdm"]

_SRC = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src")
if _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)

# Private names throughout: the hub lists every public callable of this module as an entry point.
from resnet.factory import create_model as _create_model  # noqa: E402  (needs src/ on the path)
from resnet.models import get_spec as _get_spec  # noqa: E402
from resnet.models import list_models as _list_models  # noqa: E402


def _entry_point(name: str) -> _Callable[..., _Any]:
    def build(**options: _Any) -> _Any:
        return _create_model(name, **options)

    build.__name__ = name
    build.__doc__ = f"{_get_spec(name).description}. Keywords: those of resnet.create_model (weights=..., ...)."
    return build


for _name in _list_models():
    globals()[_name] = _entry_point(_name)
