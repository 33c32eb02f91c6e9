"""Structural similarity (Wang et al. 2004) as a differentiable per-pixel map.

Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03: the constants of the original paper and
of scikit-image's ``structural_similarity(gaussian_weights=True)``. Used as a training loss
and, as 1 - SSIM, for the structural anomaly map of Bergmann et al.'s SSIM autoencoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    r = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(x: Tensor, y: Tensor, data_range: float, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-pixel SSIM of two (N, C, H, W) batches, same shape as the input.

    Borders are reflect-padded so the map covers every pixel (needed for heat maps); the
    window shrinks to the image size for images smaller than it.
    """
    c = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2]) | 1
    if window > min(x.shape[-2:]):
        window -= 2
    window = max(window, 1)
    w = _gaussian_window(window, sigma, c, x.device, torch.float32)
    x, y = x.float(), y.float()
    pad = window // 2
    if pad:
        x = F.pad(x, (pad,) * 4, mode="reflect")
        y = F.pad(y, (pad,) * 4, mode="reflect")

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
