"""Synthetic defects with exact masks, for textures that come without labelled anomalies.

Four kinds, each confined to a mask that is exactly the set of changed pixels:
``patch`` (a patch of another texture inside a random blob), ``scratch`` (a thin bright or
dark line), ``stain`` (a blob darkened or lightened by a constant factor) and ``missing``
(a blob of missing material: a near-flat dark hole). Used by the demo, the texture benchmark
and the tests: train on defect-free crops of one band of a texture, test on another band.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops, texture_image

DEFECT_KINDS = ("patch", "scratch", "stain", "missing")
# The texture pasted by 'patch' defects: a different, visibly foreign material.
FOREIGN = {"brick": "gravel", "grass": "brick", "gravel": "brick"}


def blob_mask(h: int, w: int, rng: np.random.Generator, scale: float = 0.18) -> np.ndarray:
    """A random smooth blob (an ellipse with a wobbly edge) of about ``scale`` x the image side."""
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    ry, rx = (rng.uniform(0.6, 1.4, size=2) * scale * min(h, w)).clip(2, None)
    yy, xx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    wobble = ndimage.gaussian_filter(rng.normal(size=(h, w)), sigma=max(2.0, min(h, w) / 10))
    wobble = wobble / (np.abs(wobble).max() + 1e-9) * 0.35
    mask = (u ** 2 + v ** 2) < (1 + wobble)
    lab, n = ndimage.label(mask)
    if n > 1:  # keep the main body only, so one defect is one region
        sizes = np.bincount(lab.ravel())[1:]
        mask = lab == (1 + int(np.argmax(sizes)))
    return mask


def scratch_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A straight line of width 1-3 px and length 40-80 % of the image side."""
    length = rng.uniform(0.4, 0.8) * min(h, w)
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    width = rng.uniform(1.0, 3.0)
    yy, xx = np.mgrid[0:h, 0:w]
    dy, dx = yy - cy, xx - cx
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    return (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)


def add_defect(img: np.ndarray, kind: str, rng: np.random.Generator, foreign: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One defect on a (H, W) uint8 image -> (defective image, boolean mask of changed pixels)."""
    h, w = img.shape
    out = img.astype(np.float32).copy()
    if kind == "scratch":
        mask = scratch_mask(h, w, rng)
        bright = out.mean() < 128
        out[mask] = rng.uniform(220, 255) if bright else rng.uniform(0, 35)
    else:
        mask = blob_mask(h, w, rng)
        if kind == "patch":
            if foreign is None:
                raise ValueError("a 'patch' defect needs a foreign texture")
            fy = rng.integers(0, foreign.shape[0] - h + 1)
            fx = rng.integers(0, foreign.shape[1] - w + 1)
            out[mask] = foreign[fy:fy + h, fx:fx + w].astype(np.float32)[mask]
        elif kind == "stain":
            factor = rng.choice([rng.uniform(0.35, 0.6), rng.uniform(1.5, 1.9)])
            out[mask] = out[mask] * factor
        elif kind == "missing":
            level = rng.uniform(5, 30)
            out[mask] = level + rng.normal(0, 2, size=int(mask.sum()))
        else:
            raise ValueError(f"unknown defect kind {kind!r} (one of {', '.join(DEFECT_KINDS)})")
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    changed = mask & (out != img)
    return out, changed


def defect_test_set(texture: str, size: int = 64, stride: int = 32, rows: tuple[float, float] = (0.75, 1.0),
                    fraction: float = 0.5, seed: int = 0, kinds: tuple[str, ...] = DEFECT_KINDS) -> ImageSet:
    """Crops of a held-out band of a texture, ``fraction`` of them with one defect each.

    Labels are 1 for defective crops; masks are exact; ``kinds`` names the defect (or 'good').
    """
    crops = texture_crops(texture, size, stride, rows=rows)
    rng = np.random.default_rng(seed)
    foreign = texture_image(FOREIGN.get(texture, "gravel"))
    n = crops.shape[0]
    bad = np.zeros(n, dtype=bool)
    bad[rng.permutation(n)[: int(round(n * fraction))]] = True
    images = crops.clone()
    masks = torch.zeros((n, 1, size, size), dtype=torch.uint8)
    names: list[str] = []
    for i in range(n):
        if not bad[i]:
            names.append("good")
            continue
        kind = kinds[i % len(kinds)]
        img, m = add_defect(crops[i, 0].numpy(), kind, rng, foreign)
        if not m.any():  # a defect that changed nothing is no defect
            bad[i] = False
            names.append("good")
            continue
        images[i, 0] = torch.from_numpy(img)
        masks[i, 0] = torch.from_numpy(m.astype(np.uint8))
        names.append(kind)
    return ImageSet(images=images, paths=[f"texture:{texture}:test:{i}:{k}" for i, k in enumerate(names)],
                    labels=torch.from_numpy(bad.astype(np.int64)), masks=masks, kinds=names)
