"""Reconstruction losses selectable by name (``train.loss``), computed in float32."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from aedetect.core.model.ssim import ssim_map

# Zhao et al., "Loss Functions for Image Restoration with Neural Networks" (2017): 0.84 SSIM.
SSIM_MIX = 0.84


def make_loss(name: str, scaling: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Return ``loss(output, target)``; ``scaling`` sets SSIM's data range (1 or 2)."""
    data_range = 2.0 if scaling == "symmetric" else 1.0

    def ssim_loss(y: Tensor, t: Tensor) -> Tensor:
        return 1 - ssim_map(y, t, data_range).mean()

    losses: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "mse": lambda y, t: F.mse_loss(y.float(), t.float()),
        "l1": lambda y, t: F.l1_loss(y.float(), t.float()),
        "bce": lambda y, t: F.binary_cross_entropy(y.float().clamp(1e-6, 1 - 1e-6), t.float()),
        "ssim": ssim_loss,
        "l1+ssim": lambda y, t: SSIM_MIX * ssim_loss(y, t) + (1 - SSIM_MIX) * F.l1_loss(y.float(), t.float()),
        "mse+ssim": lambda y, t: SSIM_MIX * ssim_loss(y, t) + (1 - SSIM_MIX) * F.mse_loss(y.float(), t.float()),
    }
    return losses[name]
