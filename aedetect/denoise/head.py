"""The denoise head: clean images in, random crops, synthetic noise on the fly, noise-free target.

Training data are crops, not whole images (aedetect.denoise.crops): a folder of images of
different sizes needs no resizing (resampling would change the very texture a denoiser must
learn), and the model, fully convolutional, later denoises any size. The validation crops come
from whole images that training never sees, so the recorded PSNR is a held-out figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet
from aedetect.denoise.crops import CropPool, to_tensors
from aedetect.errors import ConfigError, DataError
from aedetect.denoise.noise import NoiseModel, make_corruption, parse_recipe
from aedetect.core.heads import BaseHead


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB of two (N, C, H, W) batches (average these, not the MSEs)."""
    mse = ((x.float() - y.float()) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(data_range ** 2 / mse)


class DenoiseHead(BaseHead):
    """Noise-augmented training (``corruption``) and a validation PSNR as the calibration."""

    name = "denoise"
    builds_own_data = True

    def validate(self, cfg: Config) -> None:
        recipe = parse_recipe(cfg.denoise)
        if cfg.model.noise_map and recipe.kinds != ("gaussian",):
            raise ConfigError("model.noise_map: the noise-level input is a Gaussian sigma; "
                              f"denoise.noise must be 'gaussian', not {list(recipe.kinds)}")

    def corruption(self, cfg: Config) -> NoiseModel:
        return make_corruption(cfg.denoise, cfg.data.scaling, cfg.model.noise_map)

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
            images, max_value = to_tensors(data, cfg.data.channels)
            paths = [f"array:{i}" for i in range(len(images))]
        elif Path(data).exists():
            arrays, good, skipped = decode_usable(find_images(data), str(data), cfg.train.max_images)
            images, max_value = to_tensors(arrays, cfg.data.channels)
            paths = [str(p) for p in good]
        else:
            loaded = load_training_data(data, cfg.data, normal_class=normal_class, data_root=data_root,
                                        limit=cfg.train.max_images)
            images, max_value, paths = list(loaded.images), loaded.max_value, loaded.paths
        if cfg.train.max_images:
            images, paths = images[:cfg.train.max_images], paths[:cfg.train.max_images]
        if images[0].shape[0] != cfg.data.channels:
            raise DataError(f"images have {images[0].shape[0]} channels, data.channels is {cfg.data.channels}")
        out = CropPool.draw(images, max_value, recipe, cfg.train.seed, paths, skipped)
        cfg.data.size = tuple(out.shape[-2:])  # type: ignore[assignment]
        cfg.train.max_images = None  # already applied to the source images, not the crops
        return out

    @torch.no_grad()
    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None, early_stopping: ImageSet | None = None) -> dict[str, Any]:
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
            noisy_db.append(psnr(noisy[:, :clean.shape[1]], clean, span))
            clean_db.append(psnr(den, clean, span))
        n, d = torch.cat(noisy_db), torch.cat(clean_db)
        finite = lambda t: float(t[torch.isfinite(t)].mean()) if torch.isfinite(t).any() else math.inf  # noqa: E731
        held_out = len(getattr(holdout, "sources", []))
        where = (f"{len(holdout)} crops of {held_out} held-out images (no crop of them trained on)" if held_out
                 else f"{len(holdout)} held-out crops (of the training images: too few images to hold whole ones out)")
        return {"noise": corrupt.recipe.summary(), "val_psnr_noisy": round(finite(n), 3),
                "val_psnr_denoised": round(finite(d), 3), "val_measured_on": where}
