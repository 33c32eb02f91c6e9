"""Tiled inference for images of any size in bounded memory.

A fully convolutional model can take a whole image, but its activations cost roughly a
kilobyte per pixel: an 8000x8000 photograph would need tens of gigabytes. Above a budget
(``max_pixels`` per forward pass) the image is cut into overlapping tiles; each tile's output
is weighted by a separable linear ramp that falls towards the tile's edges inside the overlap
(where the model saw less context), and the weighted outputs are summed and normalised. The
result has no seams, and memory is bounded by one tile's activations plus the output image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from aedetect.denoise.settings import DEFAULT_MAX_PIXELS, DEFAULT_OVERLAP  # noqa: F401 (re-exported)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``size`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    n = math.ceil((size - tile) / step) + 1
    starts = [min(i * step, size - tile) for i in range(n)]
    return sorted(set(starts))


def ramp(length: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> Tensor:
    """1-D blending weights: a linear ramp over ``overlap`` pixels at each side that has a
    neighbouring tile, flat 1 elsewhere; never exactly 0 so every pixel keeps some weight."""
    w = torch.ones(length, device=device)
    r = min(overlap, length // 2)
    if r > 0:
        up = torch.arange(1, r + 1, device=device, dtype=torch.float32) / (r + 1)
        if not at_start:
            w[:r] = up
        if not at_end:
            w[-r:] = up.flip(0)
    return w


def tile_size(max_pixels: int, multiple: int) -> int:
    """The largest square tile within the budget whose side divides by the model's stride."""
    side = int(math.isqrt(max(1, max_pixels)))
    return max(multiple, side // multiple * multiple)


def run_tiled(fn: Callable[[Tensor], Tensor], x: Tensor, max_pixels: int = DEFAULT_MAX_PIXELS,
              overlap: int = DEFAULT_OVERLAP, multiple: int = 1) -> Tensor:
    """``fn`` applied to a (N, C, H, W) batch, whole if H*W <= ``max_pixels``, else tile by tile.

    ``fn`` must map (n, C, h, w) to the same shape (a denoiser). ``multiple`` is the model's
    total stride, so tiles need no padding inside the model.
    """
    h, w = x.shape[-2:]
    # Reflect-pad a margin (and up to the stride) so border pixels get real-looking context
    # whether the image is processed whole or in tiles: both paths then agree at the borders.
    m = overlap
    ph, pw = (-(h + 2 * m)) % multiple, (-(w + 2 * m)) % multiple
    mode = "reflect" if m + max(ph, pw) < min(h, w) else "replicate"
    xp = F.pad(x, (m, m + pw, m, m + ph), mode=mode)
    return _run(fn, xp, max_pixels, overlap, multiple)[..., m:m + h, m:m + w]


def _run(fn: Callable[[Tensor], Tensor], x: Tensor, max_pixels: int, overlap: int, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    if h * w <= max_pixels:
        return fn(x)
    t = tile_size(max_pixels, multiple)
    th, tw = min(t, h), min(t, w)
    overlap = min(overlap, max(0, min(th, tw) // 2 - 1))
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    weight = torch.zeros((1, 1, h, w), dtype=torch.float32, device=x.device)
    for i, y0 in enumerate(ys):
        wy = ramp(th, overlap, i == 0, i == len(ys) - 1, x.device)
        for j, x0 in enumerate(xs):
            wx = ramp(tw, overlap, j == 0, j == len(xs) - 1, x.device)
            wgt = wy[:, None] * wx[None, :]
            y = fn(x[..., y0:y0 + th, x0:x0 + tw]).float()
            out[..., y0:y0 + th, x0:x0 + tw] += y * wgt
            weight[..., y0:y0 + th, x0:x0 + tw] += wgt
    return out.div_(weight).to(x.dtype)
