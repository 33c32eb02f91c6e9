"""Does the U-Net skip / residual output / loss choice measure better? Same data, same budget.

Each variant trains the same small network (widths 16/32, one conv per level) for the same
number of steps on crops of scikit-image photographs (astronaut, coins, moon, clock, page),
Gaussian sigma 25, and is scored on held-out photographs (camera centre, chelsea, coffee
in gray), noisy input clipped and rounded to 8 bits like a file. PSNR with data_range=255,
mean over images.

    OMP_NUM_THREADS=1 python bench/denoise_ablation.py
"""

from __future__ import annotations

import json
import tempfile
import time

import numpy as np

from aedetect.denoise.denoiser import Denoiser
from aedetect.denoise.demo import noisy_version, photo, psnr8

VARIANTS = {
    "plain CAE (no skip, no residual)": {"model": {"skip": False, "residual": False}},
    "skip only": {"model": {"skip": True, "residual": False}},
    "skip + residual (preset)": {"model": {"skip": True, "residual": True}},
    "skip + residual, l1 loss": {"model": {"skip": True, "residual": True}, "train": {"loss": "l1"}},
    "skip + residual, l1+ssim loss": {"model": {"skip": True, "residual": True}, "train": {"loss": "l1+ssim"}},
}


def held_out() -> list[np.ndarray]:
    from skimage.color import rgb2gray
    import skimage.data as skd

    cam = photo("camera")[128:384, 128:384]
    return [cam] + [np.rint(rgb2gray(getattr(skd, n)()) * 255).astype(np.uint8)[:256, :256] for n in ("chelsea", "coffee")]


def main() -> None:
    train = [photo(n)[::2, ::2] for n in ("astronaut", "coins", "moon", "clock", "page")]
    tests = held_out()
    noisy = [noisy_version(c, 25, seed=i) for i, c in enumerate(tests)]
    base = np.mean([psnr8(n, c) for n, c in zip(noisy, tests)])
    print(f"noisy input: {base:.2f} dB")
    results = {"noisy input": round(float(base), 3)}
    for name, ov in VARIANTS.items():
        over = {"model": {"widths": [16, 32], "convs_per_level": 1, **ov.get("model", {})},
                "train": {"epochs": 8, "batch_size": 8, "lr": 2e-3, "grid_every": 0, "seed": 0, **ov.get("train", {})},
                "denoise": {"patch_size": 32, "crops_per_image": 32}}
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            den = Denoiser("denoise-unet", level=25, overrides=over).fit(train, out=d + "/run")
        took = time.perf_counter() - t0
        p = float(np.mean([psnr8(den.denoise(n), c) for n, c in zip(noisy, tests)]))
        results[name] = round(p, 3)
        print(f"{name:34s} {p:6.2f} dB   ({took:.0f} s wall)", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
