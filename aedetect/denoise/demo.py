"""The denoising step of ``aedetect demo``: a small denoiser trained on photographs bundled with
scikit-image, shown on one it never saw (``camera``) as noisy | denoised | clean with PSNRs.

About 30 s on a 2-core CPU (``fast``: a few seconds, for smoke tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TRAIN_PHOTOS = ("astronaut", "coins", "moon", "clock", "page", "immunohistochemistry")
HELD_OUT = "camera"
SIGMA = 25.0


def photo(name: str) -> np.ndarray:
    """A scikit-image sample as 8-bit grayscale (H, W)."""
    from aedetect.data.sources import texture_image

    return texture_image(name)


def noisy_version(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """What a noisy 8-bit file holds: clean + N(0, sigma), clipped and rounded."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=255))


def save_triptych(noisy: np.ndarray, den: np.ndarray, clean: np.ndarray, path: Path,
                  p_noisy: float, p_den: float) -> Path:
    """noisy | denoised | clean side by side, PSNRs in the titles."""
    from aedetect.core.plots import _plt, save_figure

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, img, title in zip(axes, (noisy, den, clean),
                              (f"noisy (sigma {SIGMA:g}): {p_noisy:.2f} dB", f"denoised: {p_den:.2f} dB", "clean")):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    return save_figure(fig, path)


def run(res: Any, fast: bool = False) -> None:
    """Train, denoise the held-out photograph, save the picture, add the headline line."""
    from aedetect.denoise.denoiser import Denoiser

    train = [photo(n) for n in TRAIN_PHOTOS]
    clean = photo(HELD_OUT)[128:384, 128:384]
    den = Denoiser("denoise-unet", level=SIGMA, overrides={
        "model": {"widths": [16, 32, 64], "convs_per_level": 1},
        "train": {"epochs": 1 if fast else 6, "batch_size": 16, "lr": 2e-3, "patience": 8, "grid_every": 0},
        "denoise": {"noise": "gaussian", "level": SIGMA, "patch_size": 48, "crops_per_image": 8 if fast else 32},
    })
    out = Path(res.out) / "denoise"
    den.fit(train, out=out)
    noisy = noisy_version(clean, SIGMA)
    restored = den.denoise(noisy)
    p_noisy, p_den = psnr8(noisy, clean), psnr8(restored, clean)
    pic = save_triptych(noisy, restored, clean, out / "denoise_demo.png", p_noisy, p_den)
    res.values.update({"denoise_model": str(den.model_path), "denoise_psnr_noisy": p_noisy,
                       "denoise_psnr_denoised": p_den})
    res.lines.append(f"denoise model: {den.model_path} (trained on {', '.join(TRAIN_PHOTOS)}; "
                     f"held-out '{HELD_OUT}' at sigma {SIGMA:g}: noisy {p_noisy:.2f} dB -> denoised "
                     f"{p_den:.2f} dB; picture {pic})")
