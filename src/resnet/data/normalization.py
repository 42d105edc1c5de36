"""Input normalisation as a JSON-serialisable object, fitted on the training set.

- ``pixel-mean`` (the paper): ``(x - mean_image) / 255``: the per-pixel mean image of the training
  set is subtracted and pixels are put on the 0..1 scale. For image files the mean image is 224x224,
  computed once over the training set (shorter side 256, centre 224) and cached; inputs of another
  size (multi-scale testing) subtract the mean image resized to their size.
- ``channel``: ``(x - mean_c) / std_c`` with per-channel statistics of the training set (0..255 scale).
- ``none``: ``x / 255``.

The value only: fitting it on a training set is :mod:`resnet.data.statistics`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from resnet.errors import ResNetError

MODES = ("pixel-mean", "channel", "none")


@dataclass
class Normalization:
    mode: str
    mean: torch.Tensor | None = None  # pixel-mean: [C, H, W]; channel: [C]; both on the 0..255 scale
    std: torch.Tensor | None = None  # channel: [C] on the 0..255 scale
    _resized: dict[Any, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ResNetError(f"unknown normalization {self.mode!r}; choose from {', '.join(MODES)}")

    def _mean_for(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._resized:
            assert self.mean is not None
            m = self.mean.to(device)
            if tuple(m.shape[-2:]) != (h, w):
                m = F.interpolate(m[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
            self._resized[key] = m
        return self._resized[key]

    def _shift_divisor(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """``apply(x) == (x.float() - shift) / divisor``, both broadcastable to [C, H, W]."""
        if self.mode == "pixel-mean":
            return self._mean_for(h, w, device), 255.0
        if self.mode == "channel":
            assert self.mean is not None and self.std is not None
            return self.mean.to(device)[:, None, None], self.std.to(device)[:, None, None]
        return 0.0, 255.0

    def shift_divisor(self, channels: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(shift, divisor)`` as [C, H, W] float tensors with ``apply(x) == (x.float() - shift) / divisor``.

        The very numbers :meth:`apply` uses, so transforms that fold the normalisation into a gather
        (:class:`resnet.data.batched.PadCropFlipNormalize`) give bit-identical results.
        """
        shape = (channels, h, w)
        return tuple(
            torch.as_tensor(v, dtype=torch.float32, device=device).expand(shape)  # type: ignore[return-value]
            for v in self._shift_divisor(h, w, device)
        )

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 normalised copy of ``x`` (uint8 or float on 0..255, [..., C, H, W])."""
        shift, divisor = self._shift_divisor(x.shape[-2], x.shape[-1], x.device)
        return (x.float() - shift) / divisor

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mode": self.mode}
        if self.mode == "pixel-mean":
            assert self.mean is not None
            d["shape"] = list(self.mean.shape)
            d["channel_mean"] = [round(v, 4) for v in self.mean.mean(dim=(1, 2)).tolist()]  # for people to read
            d["mean_image_f32_b64"] = base64.b64encode(self.mean.float().numpy().astype("<f4").tobytes()).decode()
        elif self.mode == "channel":
            assert self.mean is not None and self.std is not None
            d["mean"] = self.mean.tolist()
            d["std"] = self.std.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        mode = d.get("mode")
        try:
            if mode == "pixel-mean":
                raw = np.frombuffer(base64.b64decode(d["mean_image_f32_b64"]), dtype="<f4").reshape(d["shape"])
                return cls(mode, torch.from_numpy(raw.astype(np.float32)))
            if mode == "channel":
                return cls(
                    mode, torch.tensor(d["mean"], dtype=torch.float32), torch.tensor(d["std"], dtype=torch.float32)
                )
        except (KeyError, ValueError, TypeError) as e:
            raise ResNetError(f"normalization {json.dumps(d)[:80]}...: malformed ({e})") from None
        return cls(str(mode))
