"""Geometric self-ensemble: denoise the image turned and mirrored, turn each result back, average.

A denoiser trained on randomly flipped and turned crops makes slightly different errors on each
of the 8 flips/turns of an image; their mean is a better estimate (the "x8" rows of published
denoiser tables). ``n`` of them (1, 2, 4 or 8) cost n forward passes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

ENSEMBLES = (1, 2, 4, 8)
# (quarter turns, mirror): the first n of these are used; 2 = identity + mirror.
_TRANSFORMS = ((0, False), (0, True), (1, False), (1, True), (2, False), (2, True), (3, False), (3, True))


def ensembled(fn: Callable[[Tensor], Tensor], n: int) -> Callable[[Tensor], Tensor]:
    """``fn`` averaged over the first ``n`` flips/turns of its (N, C, H, W) input."""
    if n == 1:
        return fn

    def run(x: Tensor) -> Tensor:
        total = torch.zeros_like(x)
        for turns, mirror in _TRANSFORMS[:n]:
            t = torch.rot90(x, turns, dims=(-2, -1))
            t = t.flip(-1) if mirror else t
            y = fn(t)
            y = y.flip(-1) if mirror else y
            total += torch.rot90(y, -turns, dims=(-2, -1))
        return total / n

    return run
