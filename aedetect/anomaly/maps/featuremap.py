"""The ``features`` anomaly map: how far each location's encoder features are from the nearest
features seen on normal training images.

Why: on stochastic textures (grass, gravel, sand) the autoencoder cannot reconstruct the
detail, so the error is bright everywhere. Comparing local features instead of pixels is what
PatchCore does with pretrained networks; here they come from the model's own encoder, so
nothing is downloaded. Measured: docs/decisions/0002 (and 0003 for the level and window).

The bank: feature vectors of the training images at every location, a seeded random sample of
at most ``feature_bank`` of them, stored (float16) in the model file's calibration record.
Thresholds are then set on the calibration images, which the bank has not seen.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.data.imageset import ImageSet, scale_to_float


def pool_features(skip: Tensor, pool: int) -> Tensor:
    """A level's feature map averaged over a ``pool`` x ``pool`` window (stride 1), for local
    context. Zero padding counts in the border average, PyTorch's default: measured better
    than averaging only the real neighbours (pixel AUROC 0.876 vs 0.846 on grass, 0.886 vs
    0.861 on gravel, same trained models)."""
    f = skip.float()
    return F.avg_pool2d(f, pool, 1, pool // 2) if pool > 1 else f


@torch.no_grad()
def encoder_features(model: nn.Module, x: Tensor, level: int, pool: int) -> Tensor:
    """(N, C, h, w) features of encoder level ``level`` (0 = first) at that level's input
    resolution, pooled (:func:`pool_features`); runs the encoder only up to that level."""
    levels = model.encoder  # type: ignore[union-attr]
    if not 0 <= level < len(levels):
        from aedetect.errors import ConfigError

        raise ConfigError(f"anomaly.feature_level: {level} is not a level of this model (0..{len(levels) - 1})")
    h = model._pad(x)  # type: ignore[operator]
    for j, lvl in enumerate(levels):
        h, skip, _ = lvl(h)
        if j == level:
            return pool_features(skip, pool)
    raise AssertionError("unreachable")


def _vectors(f: Tensor) -> Tensor:
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])


@torch.no_grad()
def build_bank(model: nn.Module, images: ImageSet, scaling: str, level: int, pool: int, size: int,
               device: torch.device | str = "cpu", batch_size: int = 64, seed: int = 0) -> Tensor:
    """At most ``size`` feature vectors (M, C) of the encoder's level ``level`` on ``images``
    (:func:`sample_vectors`)."""
    model.eval()
    return sample_vectors(
        lambda xb: encoder_features(model, scale_to_float(xb, images.max_value, scaling), level, pool),
        images, size, device, batch_size, seed)


@torch.no_grad()
def sample_vectors(features: Callable[[Tensor], Tensor], images: ImageSet, size: int,
                   device: torch.device | str = "cpu", batch_size: int = 64, seed: int = 0) -> Tensor:
    """At most ``size`` of the vectors (M, C) that ``features`` gives at every location of
    ``images`` (it takes a batch of the integer images on ``device``), sampled uniformly with
    ``seed`` (a reservoir over batches, so memory is one batch plus the bank)."""
    g = torch.Generator().manual_seed(seed)
    bank: Tensor | None = None
    keys: Tensor | None = None
    for i in range(0, len(images), batch_size):
        v = _vectors(features(images.images[i:i + batch_size].to(device))).cpu()
        k = torch.rand(v.shape[0], generator=g)  # keep the `size` smallest keys: a uniform sample
        bank = v if bank is None else torch.cat([bank, v])
        keys = k if keys is None else torch.cat([keys, k])
        if bank.shape[0] > size:
            keep = keys.topk(size, largest=False).indices
            bank, keys = bank[keep], keys[keep]
    assert bank is not None
    return bank


def greedy_coreset(vectors: Tensor, size: int, seed: int = 0, projection: int = 128) -> Tensor:
    """``size`` of ``vectors`` (M, C) chosen greedily so that every vector lies close to one of
    them (k-centre, PatchCore's coreset): each step adds the vector farthest from those chosen,
    distances taken in a random projection to ``projection`` numbers. A uniform sample keeps
    the common texture many times over and misses rare normal details, which then score as
    defects; the coreset keeps one of each."""
    n = vectors.shape[0]
    if n <= size:
        return vectors
    g = torch.Generator().manual_seed(seed)
    v = vectors.float()
    z = v @ (torch.randn(v.shape[1], projection, generator=g) / projection ** 0.5) if v.shape[1] > projection else v
    sq = (z * z).sum(1)
    chosen = torch.empty(size, dtype=torch.long)
    nearest = torch.full((n,), float("inf"))
    j = int(torch.randint(n, (1,), generator=g))
    d = torch.empty(n)
    for i in range(size):
        chosen[i] = j
        torch.mv(z, z[j], out=d)
        d.mul_(-2).add_(sq).add_(sq[j])
        torch.minimum(nearest, d, out=nearest)
        j = int(nearest.argmax())
    return vectors[chosen]


def nearest_distance(f: Tensor, bank: Tensor) -> Tensor:
    """(N, 1, h, w) distance of every location's vector of ``f`` (N, C, h, w) to the nearest
    bank vector."""
    n, _, h, w = f.shape
    q = _vectors(f)
    bank = bank.to(q.device)
    d = torch.cat([torch.cdist(q[i:i + 8192], bank).min(1).values for i in range(0, q.shape[0], 8192)])
    return d.reshape(n, 1, h, w)


def feature_distance_map(f: Tensor, bank: Tensor, level: int, size: tuple[int, int]) -> Tensor:
    """(N, 1, H, W) distance of every location of the pooled level-``level`` features ``f`` to
    the nearest bank vector, bilinearly upsampled to the image ``size`` (H, W)."""
    h, w = f.shape[-2:]
    d = nearest_distance(f, bank)
    # Level L sees the padded input at 1/2**L of its size: scale to the padded input, then
    # crop the padding off.
    m = F.interpolate(d, size=(h << level, w << level), mode="bilinear", align_corners=False)
    return m[..., :size[0], :size[1]]
