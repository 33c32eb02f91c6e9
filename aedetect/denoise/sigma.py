"""The noise level of an image, estimated from the image alone (``aedetect denoise --sigma auto``).

The finest diagonal wavelet band of a natural image is mostly noise, and the median absolute
value of a Gaussian's samples is 0.6745 sigma: Donoho and Johnstone's robust estimator, the one
scikit-image's ``estimate_sigma`` uses, here on the orthonormal Haar band so it needs no
PyWavelets and runs in torch on the image's own device. Edges and texture also reach that band,
so images read high, the more so the lower the noise. :data:`RAW_AT` (the mean raw estimate
on 100 Train400 training images at each level) maps the raw estimate back to the level that
gives it on average. Its figures and the error that remains on Set12:
docs/benchmarks/denoise.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAD_TO_SIGMA = 1 / 0.6744897501960817
# (true sigma, mean raw estimate) on 100 Train400 images (bench/denoise_bench.py sigma).
TRUE_AT = (0.0, 2.0, 5.0, 10.0, 15.0, 25.0, 35.0, 50.0, 75.0)
RAW_AT = (3.83, 4.84, 7.35, 11.88, 16.56, 26.14, 35.87, 50.57, 75.28)


def debias(raw: Tensor) -> Tensor:
    """Raw estimates -> levels, by piecewise-linear interpolation of (RAW_AT -> TRUE_AT); 0 below
    the noise-free images' mean, the last offset carried on above sigma 75."""
    xs = torch.tensor(RAW_AT, device=raw.device)
    ys = torch.tensor(TRUE_AT, device=raw.device)
    i = torch.searchsorted(xs, raw.contiguous()).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    inside = y0 + (raw - x0) * (y1 - y0) / (x1 - x0)
    out = torch.where(raw >= xs[-1], raw - (xs[-1] - ys[-1]), inside)
    return out.clamp_min(0.0)


@torch.no_grad()
def estimate_sigma(x: Tensor, raw: bool = False) -> Tensor:
    """(N, C, H, W) images in [0, 1] -> (N,) Gaussian noise sigma on the 0..255 scale (the
    channels' estimates averaged); ``raw``: without the correction for image content."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if h < 2 or w < 2:
        return torch.zeros(x.shape[0], device=x.device)
    v = x[..., :h, :w].float()
    a, b = v[..., 0::2, 0::2], v[..., 0::2, 1::2]
    c, d = v[..., 1::2, 0::2], v[..., 1::2, 1::2]
    hh = (a - b - c + d) / 2  # orthonormal Haar: unit-variance noise stays unit variance
    mad = hh.abs().flatten(2).median(dim=2).values  # (N, C)
    est = mad.mean(1) * MAD_TO_SIGMA * 255.0
    return est if raw else debias(est)
