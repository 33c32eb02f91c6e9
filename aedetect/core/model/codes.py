"""Latent codes: encode a set, flatten codes for a projector or a 2-D map, interpolate.

``ConvAutoencoder.encode``/``decode`` give the code; models with skip connections or
max-unpool need encoder features to decode, and residual (noise-predicting) models output
a noise estimate, so those cannot decode from a code alone (:func:`why_no_decode`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.data.imageset import ImageSet

# The embedding projector and PCA/t-SNE stay responsive up to a few thousand dimensions.
MAX_CODE_DIM = 2048


def why_no_decode(model: nn.Module) -> str | None:
    """One line saying why ``decode(encode(x))`` is not this model's reconstruction, else None."""
    c = model.config  # type: ignore[attr-defined]
    if c.arch != "mlp" and c.skip:
        return "this model has skip connections: its decoder needs encoder features, not a code alone"
    if c.arch != "mlp" and c.up == "unpool":
        return "this model upsamples with max-unpool: its decoder needs the pooling indices, not a code alone"
    if c.residual:
        return "this model predicts the noise (residual output): a decoded code is not an image"
    return None


def flatten_codes(z: Tensor, max_dim: int = MAX_CODE_DIM) -> Tensor:
    """(N, C, h, w) or (N, D) codes -> (N, D') with D' <= max_dim where possible.

    Large convolutional codes are average-pooled over space (halving h and w) until they
    fit; the channel count is never reduced.
    """
    if z.ndim == 4:
        while z.shape[1] * z.shape[2] * z.shape[3] > max_dim and (z.shape[2] > 1 or z.shape[3] > 1):
            z = F.adaptive_avg_pool2d(z, (max(1, z.shape[2] // 2), max(1, z.shape[3] // 2)))
    return z.reshape(z.shape[0], -1)


@torch.no_grad()
def encode_set(model: nn.Module, images: ImageSet, scaling: str, batch_size: int = 256,
               max_dim: int = MAX_CODE_DIM) -> Tensor:
    """Flattened latent codes of every image in ``images`` (float32, on the CPU)."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for s in range(0, len(images), batch_size):
        x = images.to_float(images.images[s:s + batch_size].to(dev), scaling)
        out.append(flatten_codes(model.encode(x).float(), max_dim).cpu())  # type: ignore[operator]
    return torch.cat(out)


def code_size(model: nn.Module, shape: tuple[int, int, int]) -> int:
    """Number of values in one image's latent code, for a (C, H, W) input."""
    dev = next(model.parameters()).device
    with torch.no_grad():
        model.eval()
        return int(model.encode(torch.zeros(1, *shape, device=dev)).numel())  # type: ignore[operator]


@torch.no_grad()
def interpolate(model: nn.Module, a: Tensor, b: Tensor, steps: int = 16) -> Tensor:
    """Decode ``steps`` codes on the straight line from code(a) to code(b), ends included.

    ``a`` and ``b`` are (C, H, W) model-space images; returns (steps, C, H, W). The first and
    last images are the model's reconstructions of ``a`` and ``b``.
    """
    reason = why_no_decode(model)
    if reason:
        from aedetect.errors import AedetectError

        raise AedetectError(f"latent interpolation: {reason}")
    model.eval()
    z = model.encode(torch.stack([a, b]))  # type: ignore[operator]
    t = torch.linspace(0, 1, steps, device=z.device).view(-1, *([1] * (z.ndim - 1)))
    codes = (1 - t) * z[:1] + t * z[1:2]
    return model.decode(codes, size=tuple(a.shape[-2:]))  # type: ignore[operator]


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding n tiles."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols
