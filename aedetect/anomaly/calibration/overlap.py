"""Do the calibration images share pixels with the training images?

Why: a threshold (and the label-free selection) set on held-out images is only unbiased when
those images are new to the model. Overlapping crops of one large picture, split at random,
are not: a calibration crop's pixels were trained on, and its feature vectors sit in the
``features`` bank exactly, so its scores come out far below those of a truly new image and the
threshold flags most of them (grass in the development suite: 98.6 % of new normal crops at a
1 % target). A folder of files does not say where its crops came from, so this module looks:
each calibration image is cut into non-overlapping BxB blocks, and a block counts as shared
when it occurs pixel for pixel, at any offset, in a training image. Flat blocks (one value,
e.g. MNIST's black background) are not counted, since they match anywhere by chance.

Cost: one integer hash per BxB window of the training images (at most ``MAX_WINDOWS``; a
seeded sample of training images beyond that, so the figure is then a lower bound), about a
second for 600 64x64 crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aedetect.anomaly.calibration.reliability import OVERLAP_WARN as WARN_FRACTION  # warn from this share of images

BLOCK = 8
MIN_SIDE = 2 * BLOCK
MAX_WINDOWS = 6_000_000
CHUNK = 64  # images hashed at a time
SHARED_IMAGE = 0.5  # an image with at least this fraction of its blocks shared counts as overlapping


@dataclass(frozen=True)
class Overlap:
    """How much of the calibration set was seen in training."""

    images: int  # calibration images with at least SHARED_IMAGE of their informative blocks shared
    of: int  # calibration images with an informative block
    block_fraction: float  # shared informative blocks / informative blocks
    block: int  # the block side in pixels
    sampled: bool  # the training windows were a sample (the figure is a lower bound)

    @property
    def image_fraction(self) -> float:
        return self.images / self.of if self.of else 0.0

    @property
    def worrying(self) -> bool:
        return self.of > 0 and self.image_fraction >= WARN_FRACTION

    def record(self) -> dict[str, float | int | bool]:
        return {"images": self.images, "of": self.of, "block_fraction": round(self.block_fraction, 4),
                "block": self.block, "sampled": self.sampled}


def _weights(channels: int, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Odd 64-bit multipliers per channel, row and column: the sum of products wraps modulo
    # 2^64, an exact-match hash whose chance collisions are negligible; separable, so a window
    # costs 2B products instead of B^2.
    rng = np.random.default_rng(12345)
    return tuple(rng.integers(1, 2**62, size=n, dtype=np.int64) | 1 for n in (channels, block, block))  # type: ignore[return-value]


def _window_hashes(x: np.ndarray, w: tuple[np.ndarray, np.ndarray, np.ndarray], step: int) -> np.ndarray:
    """Hash of every BxB window of ``x`` (N, C, H, W) whose top-left corner is on a ``step`` grid."""
    wc, wy, wx = w
    b = len(wy)
    n, c, h, wd = x.shape
    with np.errstate(over="ignore"):
        flat = np.einsum("nchw,c->nhw", x, wc) if c > 1 else x[:, 0] * wc[0]
        rows = np.zeros((n, h, (wd - b) // step + 1), dtype=np.int64)
        for dx in range(b):
            rows += flat[:, :, dx:dx + wd - b + 1:step] * wx[dx]
        out = np.zeros((n, (h - b) // step + 1, rows.shape[2]), dtype=np.int64)
        for dy in range(b):
            out += rows[:, dy:dy + h - b + 1:step] * wy[dy]
    return out


def _informative(x: np.ndarray, b: int) -> np.ndarray:
    """(N, H//b, W//b): the non-overlapping blocks that hold more than one value."""
    n, c, h, wd = x.shape
    blocks = x[:, :, :h // b * b, :wd // b * b].reshape(n, c, h // b, b, wd // b, b)
    return (blocks.max(axis=(1, 3, 5)) != blocks.min(axis=(1, 3, 5)))


def calibration_overlap(calib: np.ndarray, train: np.ndarray, seed: int = 0) -> Overlap | None:
    """How many of ``calib``'s images (N, C, H, W integers) share most of their pixels with
    some image of ``train`` (the same layout); None for images under 16 pixels a side, where
    small blocks match by chance (8x8 digits: half their 2x2 blocks recur in other images)."""
    h, w = calib.shape[2:]
    if min(h, w) < MIN_SIDE:
        return None
    b = BLOCK
    wts = _weights(calib.shape[1], b)
    per_image = max(1, (train.shape[2] - b + 1) * (train.shape[3] - b + 1))
    sampled = len(train) * per_image > MAX_WINDOWS
    keep = np.arange(len(train))
    if sampled:  # before any copy: 1,000 RGB 256x256 images would be 1.5 GB as 64-bit integers
        keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:max(1, MAX_WINDOWS // per_image)])
    seen = np.sort(np.concatenate([_window_hashes(train[keep[i:i + CHUNK]].astype(np.int64), wts, 1).ravel()
                                   for i in range(0, len(keep), CHUNK)]))
    shared_n, info_n = [], []
    for i in range(0, len(calib), CHUNK):
        c = calib[i:i + CHUNK].astype(np.int64)
        hashes = _window_hashes(c, wts, b)[:, :h // b, :w // b]
        info = _informative(c, b)
        shared = (seen[np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)] == hashes) & info
        shared_n.append(shared.sum(axis=(1, 2)))
        info_n.append(info.sum(axis=(1, 2)))
    n_shared, n_info = np.concatenate(shared_n), np.concatenate(info_n)
    has = n_info > 0
    frac = np.divide(n_shared, n_info, out=np.zeros(len(calib)), where=has)
    return Overlap(images=int((frac[has] >= SHARED_IMAGE).sum()), of=int(has.sum()),
                   block_fraction=float(n_shared.sum() / max(1, n_info.sum())), block=b, sampled=sampled)
