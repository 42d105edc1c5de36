"""Deep Residual Learning for Image Recognition (He et al. 2015) on PyTorch.

The public entry points are :func:`create_model` and :func:`list_models`; the ``resnet``
command (``resnet --help``) wraps training, evaluation and the paper's experiments.
"""

from resnet.factory import create_model
from resnet.models import list_models

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "__version__"]
