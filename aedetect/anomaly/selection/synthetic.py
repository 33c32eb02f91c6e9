"""Synthetic anomaly families made from normal images alone, for label-free model selection.

A user has normal images only, so the settings of the anomaly head are chosen by how well each
candidate separates held-out normal images from anomalies *made from* those images
(aedetect.anomaly.selection.select). One generator would be learned rather than measured, so there are
several families, each a function ``(img, other, rng) -> (anomalous image, mask)`` on (C, H, W)
float images in [0, 1] (``other``: another normal image of the same shape), deterministic from
the ``numpy.random.Generator`` it is given:

Local families (surfaces: only pixels inside the mask change, the mask is exactly the changed
pixels): ``patch`` (a blob of another normal image, or of this one, from another place),
``scratch`` (a thin line brighter or darker than its surroundings), ``stain`` (a blob scaled and
offset in brightness), ``hole`` (a blob of flat dark or bright material), ``blur`` (a blob
blurred) and ``shift`` (a blob's intensity, per channel for colour, shifted).

Global / semantic families (objects, e.g. one-class digits, where an anomaly is another shape):
``cutpaste`` (a rectangle of the image pasted at another place, Li et al. CVPR 2021), ``mix``
(a blend of two normal images), ``elastic`` (a smooth random displacement field), ``affine``
(rotation, scale and shear about the centre), ``mirror`` (one half reflected onto the other)
and ``contrast`` (a strong contrast change about the image mean). Their mask is the set of
changed pixels too, which may be most of the image.

The blob and line masks are those of the benchmark's defects (aedetect.anomaly.selection.defects) and of
the learned map (aedetect.anomaly.maps.learned), so one definition of each shape exists.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from aedetect.anomaly.selection.defects import blob_mask, scratch_mask
from aedetect.anomaly.maps.learned import random_blob

Family = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]

CHANGED = 2 / 255  # a global family's mask: the pixels that moved by more than 2 grey levels


def _blob(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Either mask shape, so no single outline is what the selection learns to see."""
    return blob_mask(h, w, rng, scale=rng.uniform(0.1, 0.25)) if rng.random() < 0.5 else random_blob(h, w, rng)


def _inside(img: np.ndarray, new: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``img`` with ``new`` (clipped to [0, 1]) inside ``mask``; the mask of changed pixels."""
    out = img.copy()
    out[:, mask] = np.clip(new, 0, 1)[:, mask]
    return out, changed(img, out, 0.0)


def changed(img: np.ndarray, out: np.ndarray, tol: float = CHANGED) -> np.ndarray:
    """(H, W) mask of the pixels that moved by more than ``tol`` in any channel: exactly the
    changed pixels for the local families (``tol = 0``), the visibly changed ones (more than
    2 grey levels) for the global ones, whose resampling moves every pixel a little."""
    return np.abs(out - img).max(0) > tol


def patch(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = img.shape
    src = other if rng.random() < 0.5 else img
    src = np.roll(src, (int(rng.integers(h // 4, h - h // 4 + 1)), int(rng.integers(w // 4, w - w // 4 + 1))), (1, 2))
    return _inside(img, src, _blob(h, w, rng))


def scratch(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = img.shape
    mask = scratch_mask(h, w, rng)
    level = rng.uniform(0.85, 1.0) if img[:, mask].mean() < 0.5 else rng.uniform(0.0, 0.15)
    return _inside(img, np.full_like(img, level), mask)


def stain(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = _blob(*img.shape[1:], rng)
    factor = rng.uniform(0.35, 0.6) if rng.random() < 0.5 else rng.uniform(1.5, 1.9)
    offset = rng.uniform(0.1, 0.3) * (1 if img[:, mask].mean() < 0.5 else -1)
    return _inside(img, img * factor + offset, mask)


def hole(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = _blob(*img.shape[1:], rng)
    level = rng.uniform(0.75, 0.95) if img[:, mask].mean() < 0.5 else rng.uniform(0.02, 0.12)
    return _inside(img, level + rng.normal(0, 0.01, size=img.shape), mask)


def blur(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = _blob(*img.shape[1:], rng)
    sigma = rng.uniform(1.5, 4.0) * max(1.0, min(img.shape[1:]) / 64)
    return _inside(img, ndimage.gaussian_filter(img, (0, sigma, sigma)), mask)


def shift(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = _blob(*img.shape[1:], rng)
    sign = 1 if img[:, mask].mean() < 0.5 else -1
    offsets = sign * rng.uniform(0.15, 0.4, size=(img.shape[0], 1, 1))  # one per channel: a colour shift
    return _inside(img, img + offsets, mask)


def cutpaste(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = img.shape
    area = rng.uniform(0.04, 0.15) * h * w
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
    ph = int(np.clip(round(np.sqrt(area * aspect)), 2, h - 1))
    pw = int(np.clip(round(np.sqrt(area / aspect)), 2, w - 1))
    sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    ty, tx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    out = img.copy()
    piece = img[:, sy:sy + ph, sx:sx + pw]
    out[:, ty:ty + ph, tx:tx + pw] = np.clip(piece * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1), 0, 1)
    return out, changed(img, out, 0.0)


def mix(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.uniform(0.35, 0.65)
    out = np.clip((1 - a) * img + a * other, 0, 1)
    return out, changed(img, out)


def elastic(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = img.shape
    side = min(h, w)
    sigma, alpha = side * rng.uniform(0.12, 0.2), side * rng.uniform(0.15, 0.3)
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma)
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma)
    dy, dx = (d / (np.abs(d).max() + 1e-9) * alpha for d in (dy, dx))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.stack([ndimage.map_coordinates(ch, [yy + dy, xx + dx], order=1, mode="reflect") for ch in img])
    return out.astype(img.dtype), changed(img, out)


def affine(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _, h, w = img.shape
    t = np.deg2rad(rng.uniform(15, 40) * rng.choice([-1, 1]))
    scale = rng.uniform(0.8, 1.2)
    shear = rng.uniform(-0.3, 0.3)
    m = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ np.array([[1, shear], [0, 1]]) / scale
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - m @ centre
    out = np.stack([ndimage.affine_transform(ch, m, offset=offset, order=1, mode="nearest") for ch in img])
    return out.astype(img.dtype), changed(img, out)


def mirror(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    vertical = rng.random() < 0.5
    x = img.swapaxes(1, 2) if vertical else img  # the mirrored axis is the last one
    out = x.copy()
    n = x.shape[2] // 2
    if rng.random() < 0.5:  # the left half reflected onto the right, or the right onto the left
        out[:, :, x.shape[2] - n:] = x[:, :, :n][:, :, ::-1]
    else:
        out[:, :, :n] = x[:, :, x.shape[2] - n:][:, :, ::-1]
    out = out.swapaxes(1, 2) if vertical else out
    return np.ascontiguousarray(out), changed(img, out, 0.0)


def contrast(img: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mean = img.mean(axis=(1, 2), keepdims=True)
    factor = rng.uniform(0.25, 0.5) if rng.random() < 0.5 else rng.uniform(2.0, 3.0)
    out = np.clip(mean + (img - mean) * factor, 0, 1)
    return out, changed(img, out)


LOCAL: dict[str, Family] = {"patch": patch, "scratch": scratch, "stain": stain, "hole": hole, "blur": blur,
                            "shift": shift}
GLOBAL: dict[str, Family] = {"cutpaste": cutpaste, "mix": mix, "elastic": elastic, "affine": affine,
                             "mirror": mirror, "contrast": contrast}
FAMILIES: dict[str, Family] = {**LOCAL, **GLOBAL}

TRIES = 8  # a blob on an empty background may change nothing: draw again, up to this many times
MIN_CHANGED = 0.005  # at least this share of the pixels (and one pixel) must change visibly


def make_anomaly(family: str, img: np.ndarray, other: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One anomaly of ``family`` on ``img`` (C, H, W, float in [0, 1]); redrawn while it changes
    fewer than :data:`MIN_CHANGED` of the pixels (a blur on black background changes nothing)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown anomaly family {family!r} (one of {', '.join(FAMILIES)})")
    need = max(1, int(MIN_CHANGED * img.shape[1] * img.shape[2]))
    out, mask = img, np.zeros(img.shape[1:], dtype=bool)
    for _ in range(TRIES):
        out, mask = FAMILIES[family](img, other, rng)
        if changed(img, out).sum() >= need:  # visibly changed pixels, whatever the family's mask
            break
    return out.astype(img.dtype, copy=False), mask


def make_anomalies(images: np.ndarray, family: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One anomaly of ``family`` per image of (N, C, H, W) floats in [0, 1]; ``other`` is another
    image of the set, drawn from the same seeded generator. Returns (images, (N, H, W) masks)."""
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)] if family in FAMILIES else seed)
    n = images.shape[0]
    outs, masks = [], []
    for i in range(n):
        j = (i + 1 + int(rng.integers(0, max(n - 1, 1)))) % n if n > 1 else i
        out, mask = make_anomaly(family, images[i], images[j], rng)
        outs.append(out)
        masks.append(mask)
    return np.stack(outs), np.stack(masks)
