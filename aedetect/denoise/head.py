"""The denoise head: clean images in, random crops, synthetic noise on the fly, noise-free target.

Training data are crops, not whole images: ``denoise.crops_per_image`` random
``denoise.patch_size`` crops (with a random flip / 90-degree turn) are cut from every clean
image once, at load time, into the integer cache the Trainer slices batches from. A folder of
images of different sizes therefore needs no resizing (resampling would change the very
texture a denoiser must learn), and the model, fully convolutional, later denoises any size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, to_chw
from aedetect.errors import DataError
from aedetect.denoise.noise import NoiseModel, NoiseRecipe, make_corruption, parse_recipe
from aedetect.core.heads import BaseHead


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB of two (N, C, H, W) batches (average these, not the MSEs)."""
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(data_range ** 2 / mse)


def random_crops(images: list[Tensor], patch: int, per_image: int, seed: int) -> tuple[Tensor, list[int]]:
    """``per_image`` random (patch x patch) crops of each (C, H, W) image, randomly flipped and
    turned by multiples of 90 degrees; images smaller than the patch are reflect-padded.

    An image with fewer crop positions than ``per_image`` (e.g. 28x28 MNIST digits) gives one
    crop per position, so a large set of small images does not blow up the cache. Returns the
    crops and how many came from each image.
    """
    g = torch.Generator().manual_seed(seed)
    out, counts = [], []
    for img in images:
        c, h, w = img.shape
        if h < patch or w < patch:
            ph, pw = max(0, patch - h), max(0, patch - w)
            mode = "reflect" if ph < h and pw < w else "replicate"
            img = torch.nn.functional.pad(img[None].float(), (0, pw, 0, ph), mode=mode)[0].to(img.dtype)
            h, w = img.shape[-2:]
        n = min(per_image, (h - patch + 1) * (w - patch + 1))
        counts.append(n)
        tops = torch.randint(0, h - patch + 1, (n,), generator=g)
        lefts = torch.randint(0, w - patch + 1, (n,), generator=g)
        turns = torch.randint(0, 8, (n,), generator=g)
        for t, l, r in zip(tops.tolist(), lefts.tolist(), turns.tolist()):
            crop = img[:, t:t + patch, l:l + patch]
            if r >= 4:
                crop = crop.flip(-1)
            out.append(torch.rot90(crop, r % 4, dims=(-2, -1)))
    return torch.stack(out).contiguous(), counts


def _to_tensors(arrays: list[np.ndarray], channels: int) -> tuple[list[Tensor], float]:
    """Decoded (H, W, C) arrays at native size -> (C, H, W) integer tensors on one scale."""
    sixteen = any(a.dtype == np.uint16 for a in arrays)
    return [to_chw(a, channels, sixteen) for a in arrays], (65535.0 if sixteen else 255.0)


def crop_set(images: list[Tensor], max_value: float, recipe: NoiseRecipe, seed: int,
             paths: list[str] | None = None, skipped: list[tuple[str, str]] | None = None) -> ImageSet:
    """The training cache: random crops of every image (see :func:`random_crops`)."""
    patch = min(recipe.patch_size, max(min(im.shape[-2:]) for im in images))
    crops, counts = random_crops(images, patch, recipe.crops_per_image, seed)
    names = [f"{p}#crop{j}" for p, n in zip(paths or [str(i) for i in range(len(images))], counts)
             for j in range(n)]
    return ImageSet(images=crops.to(torch.int32 if max_value > 255 else torch.uint8), max_value=max_value,
                    paths=names, skipped=list(skipped or []))


class DenoiseHead(BaseHead):
    """Noise-augmented training (``corruption``) and a validation PSNR as the calibration."""

    name = "denoise"
    builds_own_data = True

    def validate(self, cfg: Config) -> None:
        parse_recipe(cfg.denoise)

    def corruption(self, cfg: Config) -> NoiseModel:
        return make_corruption(cfg.denoise, cfg.data.scaling)

    def training_data(self, data: str | ImageSet | list[np.ndarray], cfg: Config, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
        """Clean images at their own size -> random crops; sets ``data.size`` to the patch size."""
        from aedetect.data.sources import decode_usable, find_images, load_training_data

        recipe = parse_recipe(cfg.denoise)
        skipped: list[tuple[str, str]] = []
        if isinstance(data, ImageSet):
            images, max_value, paths = list(data.images), data.max_value, data.paths
            skipped = list(data.skipped)
        elif isinstance(data, list):  # decoded (H, W, C) arrays of any sizes (the Python API)
            images, max_value = _to_tensors(data, cfg.data.channels)
            paths = [f"array:{i}" for i in range(len(images))]
        elif Path(data).exists():
            arrays, good, skipped = decode_usable(find_images(data), str(data), cfg.train.max_images)
            images, max_value = _to_tensors(arrays, cfg.data.channels)
            paths = [str(p) for p in good]
        else:
            loaded = load_training_data(data, cfg.data, normal_class=normal_class, data_root=data_root,
                                        limit=cfg.train.max_images)
            images, max_value, paths = list(loaded.images), loaded.max_value, loaded.paths
        if cfg.train.max_images:
            images, paths = images[:cfg.train.max_images], paths[:cfg.train.max_images]
        if images[0].shape[0] != cfg.data.channels:
            raise DataError(f"images have {images[0].shape[0]} channels, data.channels is {cfg.data.channels}")
        out = crop_set(images, max_value, recipe, cfg.train.seed, paths, skipped)
        cfg.data.size = tuple(out.shape[-2:])  # type: ignore[assignment]
        cfg.train.max_images = None  # already applied to the source images, not the crops
        return out

    @torch.no_grad()
    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None) -> dict[str, Any]:
        """The recipe in normalised form plus the mean PSNR of noisy and denoised validation crops
        (fixed noise seed), so ``aedetect info`` shows what the model gained."""
        corrupt = self.corruption(cfg)
        g = torch.Generator().manual_seed(cfg.train.seed + 12345)
        model.eval()
        noisy_db, clean_db = [], []
        span = 2.0 if cfg.data.scaling == "symmetric" else 1.0
        for s in range(0, len(holdout), 64):
            clean = holdout.to_float(holdout.images[s:s + 64].to(device), cfg.data.scaling)
            noisy = corrupt(clean, g)
            den = model(noisy).clamp(-1 if span == 2 else 0, 1)
            noisy_db.append(psnr(noisy, clean, span))
            clean_db.append(psnr(den, clean, span))
        n, d = torch.cat(noisy_db), torch.cat(clean_db)
        finite = lambda t: float(t[torch.isfinite(t)].mean()) if torch.isfinite(t).any() else math.inf  # noqa: E731
        return {"noise": corrupt.recipe.summary(), "val_psnr_noisy": round(finite(n), 3),
                "val_psnr_denoised": round(finite(d), 3)}
