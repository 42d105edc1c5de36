"""Deep Residual Learning for Image Recognition (He et al. 2015) on PyTorch.

The public entry points are :func:`create_model` and :func:`list_models`; the ``resnet``
command (``resnet --help``) wraps training, evaluation and the paper's experiments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resnet.factory import create_model
    from resnet.models import list_models

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "__version__"]


def __getattr__(name: str) -> Any:
    # The networks (and torch with them) are imported on first use, so that `resnet --help` is instant.
    if name == "create_model":
        from resnet.factory import create_model

        return create_model
    if name == "list_models":
        from resnet.models import list_models

        return list_models
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
