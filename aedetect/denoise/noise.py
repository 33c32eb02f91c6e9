"""Synthetic noise for denoise training, from a noise recipe kept in ``Config.denoise``.

The recipe is a small table saved verbatim in the model file (``aedetect info`` shows it)::

    [denoise]
    noise = "gaussian"            # or a list: ["gaussian", "shot"] (one kind drawn per image)
    level = [5, 50]               # [low, high]: blind to the level; a number: one fixed level
    # level = {gaussian = [5, 50], shot = [0.05, 0.3]}   # per kind, when several kinds
    clip = true                   # clip the noisy image to the valid range, as a file would be
    patch_size = 64               # training crop size (see aedetect.denoise.head)
    crops_per_image = 64          # random crops taken from each clean image per epoch
    fresh_crops = true            # new crops every epoch (aedetect.denoise.crops)

Levels, per kind (``NOISE_KINDS``):
    gaussian     sigma on the 0..255 scale (25 means sigma = 25/255 of the full range)
    shot         Poisson noise, albumentations ``ShotNoise`` scale (1/photons per unit intensity)
    speckle      multiplicative noise x * U(1 - s, 1 + s), elementwise (``MultiplicativeNoise``)
    salt_pepper  fraction of pixels set to black or white (``SaltAndPepper``)
    jpeg         JPEG quality 1..100, lower is worse (``ImageCompression``)

Gaussian noise, the common case and the training hot path, is drawn in torch on the batch's
own device (one ``randn`` per batch): going through albumentations would mean a copy to numpy
and a Python loop over images every step. The other kinds are per-image albumentations
transforms (on CPU), seeded from the trainer's generator so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aedetect.errors import ConfigError

NOISE_KINDS: dict[str, tuple[float, float]] = {
    # kind: (default [low, high], and the allowed bounds are checked in _check_level)
    "gaussian": (5.0, 50.0),
    "shot": (0.02, 0.3),
    "speckle": (0.05, 0.3),
    "salt_pepper": (0.01, 0.1),
    "jpeg": (10.0, 60.0),
}
_BOUNDS: dict[str, tuple[float, float]] = {
    "gaussian": (0.0, 255.0), "shot": (0.0, 100.0), "speckle": (0.0, 1.0),
    "salt_pepper": (0.0, 1.0), "jpeg": (1.0, 100.0),
}
RECIPE_KEYS = ("noise", "level", "clip", "patch_size", "crops_per_image", "fresh_crops")
DEFAULT_PATCH = 64
DEFAULT_CROPS = 64


@dataclass(frozen=True)
class NoiseRecipe:
    """A validated recipe: the kinds, each kind's [low, high] level, and the crop settings."""

    kinds: tuple[str, ...]
    levels: dict[str, tuple[float, float]]
    clip: bool = True
    patch_size: int = DEFAULT_PATCH
    crops_per_image: int = DEFAULT_CROPS
    fresh_crops: bool = True

    def summary(self) -> dict[str, Any]:
        """The normalised recipe (what the model file's calibration records)."""
        return {"noise": list(self.kinds), "level": {k: list(v) for k, v in self.levels.items()},
                "clip": self.clip, "patch_size": self.patch_size, "crops_per_image": self.crops_per_image,
                "fresh_crops": self.fresh_crops}

    @property
    def blind(self) -> bool:
        return any(lo != hi for lo, hi in self.levels.values())


def _check_level(kind: str, value: Any) -> tuple[float, float]:
    key = f"denoise.level.{kind}" if kind else "denoise.level"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = float(value)
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ConfigError(f"{key}: expected a number or [low, high], got {value!r}")
    b0, b1 = _BOUNDS[kind]
    if not (b0 <= lo <= hi <= b1):
        raise ConfigError(f"{key}: {value!r} must satisfy {b0:g} <= low <= high <= {b1:g}")
    return lo, hi


def parse_recipe(d: dict[str, Any]) -> NoiseRecipe:
    """Validate ``Config.denoise``; every bad key or value is one line naming it."""
    for k in d:
        if k not in RECIPE_KEYS:
            raise ConfigError(f"denoise.{k}: unknown key (allowed: {', '.join(RECIPE_KEYS)})")
    raw = d.get("noise", "gaussian")
    kinds = (raw,) if isinstance(raw, str) else tuple(raw) if isinstance(raw, (list, tuple)) else None
    if not kinds or not all(isinstance(k, str) for k in kinds):
        raise ConfigError(f"denoise.noise: expected a kind or a list of kinds ({', '.join(NOISE_KINDS)}), got {raw!r}")
    for k in kinds:
        if k not in NOISE_KINDS:
            raise ConfigError(f"denoise.noise: {k!r} is not one of {', '.join(NOISE_KINDS)}")
    level = d.get("level")
    levels: dict[str, tuple[float, float]] = {}
    for k in kinds:
        if level is None:
            levels[k] = NOISE_KINDS[k]
        elif isinstance(level, dict):
            extra = set(level) - set(kinds)
            if extra:
                raise ConfigError(f"denoise.level: {sorted(extra)} not in denoise.noise {list(kinds)}")
            levels[k] = _check_level(k, level[k]) if k in level else NOISE_KINDS[k]
        elif len(kinds) > 1:
            raise ConfigError("denoise.level: with several noise kinds give a table per kind, "
                              "e.g. {gaussian = [5, 50], jpeg = [10, 60]}")
        else:
            levels[k] = _check_level(k, level)
    clip, fresh = d.get("clip", True), d.get("fresh_crops", True)
    for key, v in (("clip", clip), ("fresh_crops", fresh)):
        if not isinstance(v, bool):
            raise ConfigError(f"denoise.{key}: expected true or false, got {v!r}")
    patch, crops = d.get("patch_size", DEFAULT_PATCH), d.get("crops_per_image", DEFAULT_CROPS)
    for key, v in (("patch_size", patch), ("crops_per_image", crops)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"denoise.{key}: expected a positive integer, got {v!r}")
    return NoiseRecipe(kinds=kinds, levels=levels, clip=clip, patch_size=patch, crops_per_image=crops,
                       fresh_crops=fresh)


def parse_level(text: str) -> float | list[float]:
    """CLI form of a level: '25' -> 25.0 (fixed), '5:50' -> [5.0, 50.0] (blind range)."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise ConfigError(f"--noise-level: {text!r} is not LEVEL or LOW:HIGH") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) != 2:
        raise ConfigError(f"--noise-level: {text!r} is not LEVEL or LOW:HIGH")
    return parts


def _uniform(lo: float, hi: float, n: int, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def add_gaussian(x: Tensor, sigma255: Tensor, g: torch.Generator, span: float) -> Tensor:
    """x + N(0, sigma) per image; ``sigma255`` (N,) on the 0..255 scale, ``span`` the value range
    of the model space (1 for [0, 1], 2 for [-1, 1]).

    The noise is drawn on x's device from a generator seeded by ``g`` (a CPU generator cannot
    draw CUDA tensors), so the CPU generator's sequence stays the only source of randomness.
    """
    if x.device.type == "cpu":
        noise = torch.randn(x.shape, generator=g, dtype=torch.float32)
    else:
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=g))
        dg = torch.Generator(device=x.device).manual_seed(seed)
        noise = torch.randn(x.shape, generator=dg, device=x.device, dtype=torch.float32)
    s = (sigma255.to(x.device, torch.float32) * (span / 255.0)).view(-1, *([1] * (x.ndim - 1)))
    return x + noise * s


def _album_transform(kind: str, level: float) -> Callable[..., dict[str, Any]]:
    import albumentations as A

    if kind == "shot":
        return A.ShotNoise(scale_range=(level, level), p=1.0)
    if kind == "speckle":
        return A.MultiplicativeNoise(multiplier=(1 - level, 1 + level), elementwise=True, per_channel=True, p=1.0)
    if kind == "salt_pepper":
        return A.SaltAndPepper(amount=(level, level), p=1.0)
    if kind == "jpeg":
        return A.ImageCompression(compression_type="jpeg", quality_range=(int(level), int(level)), p=1.0)
    raise ConfigError(f"denoise.noise: {kind!r} is not one of {', '.join(NOISE_KINDS)}")


def add_albumentations(x: Tensor, kind: str, levels: Tensor, g: torch.Generator) -> Tensor:
    """Apply one albumentations noise per image of a [0, 1] (N, C, H, W) batch, seeded from ``g``."""
    out = torch.empty_like(x)
    arr = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    for i in range(x.shape[0]):
        t = _album_transform(kind, float(levels[i]))
        t.set_random_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=g)))  # type: ignore[attr-defined]
        y = t(image=np.ascontiguousarray(arr[i], dtype=np.float32))["image"]
        if y.ndim == 2:
            y = y[:, :, None]
        out[i] = torch.from_numpy(np.asarray(y, dtype=np.float32)).permute(2, 0, 1).to(out.device)
    return out


class NoiseModel:
    """The ``corrupt(x_float, generator)`` hook of the Trainer for one recipe.

    ``x`` is a batch in model space (``data.scaling``: [0, 1] or [-1, 1]); the result is in the
    same space. Each image gets one kind (uniform over the recipe's kinds) and one level drawn
    uniformly from that kind's [low, high].
    """

    def __init__(self, recipe: NoiseRecipe, scaling: str = "unit", noise_map: bool = False) -> None:
        self.recipe = recipe
        self.scaling = scaling
        self.noise_map = noise_map

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        """The noisy batch; with ``noise_map`` one more channel holds each image's sigma / 255
        (the model's noise-level input, see aedetect.core.model.plainnets)."""
        n = x.shape[0]
        sigmas = torch.zeros(n)
        kinds = self.recipe.kinds
        which = torch.randint(0, len(kinds), (n,), generator=g) if len(kinds) > 1 else torch.zeros(n, dtype=torch.long)
        unit = (x + 1) / 2 if self.scaling == "symmetric" else x
        out = unit.float().clone()
        for ki, kind in enumerate(kinds):
            idx = (which == ki).nonzero().flatten()
            if len(idx) == 0:
                continue
            lo, hi = self.recipe.levels[kind]
            lv = _uniform(lo, hi, len(idx), g)
            sel = idx.to(x.device)
            if kind == "gaussian":
                out[sel] = add_gaussian(unit[sel].float(), lv, g, span=1.0)
                sigmas[idx] = lv
            else:
                out[sel] = add_albumentations(unit[sel].clamp(0, 1), kind, lv, g)
        if self.recipe.clip:
            out = out.clamp_(0, 1)
        out = out * 2 - 1 if self.scaling == "symmetric" else out
        if self.noise_map:
            out = torch.cat([out, level_map(sigmas, out)], 1)
        return out.to(x.dtype)


def level_map(sigma255: Tensor, like: Tensor) -> Tensor:
    """The noise-level input channel: (N, 1, H, W) holding each image's sigma / 255."""
    s = sigma255.to(like.device, torch.float32).view(-1, 1, 1, 1) / 255.0
    return s.expand(like.shape[0], 1, *like.shape[-2:]).to(like.dtype)


def make_corruption(denoise: dict[str, Any], scaling: str = "unit", noise_map: bool = False) -> NoiseModel:
    """The Trainer's corruption for a config's ``denoise`` table."""
    return NoiseModel(parse_recipe(denoise), scaling, noise_map)
