"""Named architectures: the tutorials this field starts from, as nested config overrides.

Each preset is a partial config (the same shape as a recipe TOML file) applied on top of the
defaults; a recipe and then CLI options are applied on top of the preset.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from aedetect.core.config import Config, apply_overrides, load_recipe
from aedetect.core.heads import validate
from aedetect.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    # General-purpose CAE for image folders: two convs per level, four levels (a 16x downsampled
    # code). The size follows the data: the folder's most common size, at most 256 on a side.
    "default": {
        "model": {"widths": [32, 64, 128, 128], "convs_per_level": 2, "up": "nearest"},
        "data": {"channels": 1},
    },
    # Keras blog "dogs" CAE: Conv 32/64/128 + MaxPool, Conv 128/16/3 + UpSampling, 224x224 RGB.
    # 93,248 encoder and 166,467 decoder parameters, as in the original Keras summary.
    "keras-dogs": {
        "model": {"widths": [32, 64, 128], "decoder_widths": [128, 16, 3], "decoder_order": "conv_up",
                  "output_conv": False, "down": "maxpool", "up": "nearest"},
        "data": {"channels": 3, "size": [224, 224]},
    },
    # One padded encoding conv and one decoding conv; tanh output for [-1, 1] inputs,
    # L2 weight decay on the encoder only.
    "single-layer": {
        "model": {"widths": [32], "down": "none", "decoder_widths": [1], "decoder_order": "conv_up",
                  "output_conv": False, "kernel_size": 5},
        "data": {"channels": 1, "scaling": "symmetric", "size": [28, 28]},
        "train": {"weight_decay": 1e-5, "weight_decay_scope": "encoder"},
    },
    # CIFAR-10 CAE: stride-2 conv blocks to 64x8x8, Linear to a latent vector (200 or 1000),
    # mirrored ConvTranspose decoder.
    "cifar-linear": {
        "model": {"widths": [32, 64], "down": "stride", "up": "transpose", "bottleneck": "dense",
                  "latent_dim": 200},
        "data": {"channels": 3, "size": [32, 32]},
    },
    # TF-estimator CAE: two 3x3 convs per level, max-pool (or strided conv), conv-transpose
    # upsampling; 28x28 inputs are padded to 32 and cropped back.
    "estimator": {
        "model": {"widths": [32, 64, 128], "convs_per_level": 2, "down": "maxpool", "up": "transpose"},
        "data": {"channels": 1},
    },
    # Stacked fully-connected autoencoder 784-1000-100-1000-784, for comparison.
    "mlp": {
        "model": {"arch": "mlp", "mlp_hidden": [1000, 100]},
        "data": {"channels": 1, "size": [28, 28]},
    },
    # The demo's small CAE for 8x8 digits or 32x32 texture crops.
    "small": {
        "model": {"widths": [16, 32, 64], "convs_per_level": 1, "up": "nearest"},
        "data": {"channels": 1},
        "train": {"batch_size": 64},
    },
    # Denoiser: a small U-Net (skip connections) predicting the noise (residual output),
    # trained on 64x64 crops with Gaussian noise of sigma 5..50 (blind); see docs/denoise.md.
    "denoise-unet": {
        "task": "denoise",
        "model": {"widths": [32, 64, 128], "convs_per_level": 2, "up": "nearest", "skip": True,
                  "residual": True},
        "data": {"channels": 1, "size": None},
        "train": {"batch_size": 32, "loss": "mse", "epochs": 30, "lr": 1e-3},
        "denoise": {"noise": "gaussian", "level": [5, 50], "patch_size": 64, "crops_per_image": 64},
    },
}


def preset_overrides(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"preset: {name!r} is not one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_config(
    preset: str | None = None,
    recipe: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Resolve preset -> recipe -> overrides into a validated :class:`Config`.

    A recipe may name its own preset (``preset = "estimator"``); an explicit ``preset``
    argument wins over it.
    """
    recipe_dict: dict[str, Any] = load_recipe(recipe) if recipe else {}
    preset = preset or recipe_dict.pop("preset", None) or "default"
    recipe_dict.pop("preset", None)
    cfg = Config()
    apply_overrides(cfg, preset_overrides(preset))
    apply_overrides(cfg, recipe_dict)
    if overrides:
        apply_overrides(cfg, overrides)
    return validate(cfg)
