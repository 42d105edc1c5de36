"""The embedded default: scikit-learn's handwritten digits (1,797 8x8 grey images, 10 classes)."""

from __future__ import annotations

import numpy as np
import torch

from resnet.data.bundle import TensorSplit


def read_digits() -> tuple[list[str], TensorSplit]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # The pixels are counts 0..16 of a 4x4 block; scale to the 0..255 range of every other source.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return [str(c) for c in digits.target_names], TensorSplit(torch.from_numpy(images), labels)
