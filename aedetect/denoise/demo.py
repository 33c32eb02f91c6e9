"""The denoising step of ``aedetect demo``: the shipped ``pretrained:gray`` model (trained on
Train400, never on this picture) on scikit-image's ``camera`` with noise of sigma 25, the level
estimated from the noisy image itself (``--sigma auto``), shown as noisy | denoised | clean
with PSNRs. No training: about a second on a 2-core CPU.
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
    """Denoise the held-out photograph with the shipped model, save the picture, add the line.
    (``fast`` is the demo's smoke-test switch; this step is fast either way.)"""
    import torch

    from aedetect.denoise.denoiser import Denoiser

    clean = photo(HELD_OUT)[128:384, 128:384]
    den = Denoiser.load("pretrained:gray", sigma="auto")
    noisy = noisy_version(clean, SIGMA)
    estimated = float(den.sigmas(torch.from_numpy(noisy / 255.0).float()[None, None])[0])
    restored = den.denoise(noisy)
    p_noisy, p_den = psnr8(noisy, clean), psnr8(restored, clean)
    out = Path(res.out) / "denoise"
    out.mkdir(parents=True, exist_ok=True)
    pic = save_triptych(noisy, restored, clean, out / "denoise_demo.png", p_noisy, p_den)
    res.values.update({"denoise_model": "pretrained:gray", "denoise_psnr_noisy": p_noisy,
                       "denoise_psnr_denoised": p_den, "denoise_sigma_estimated": estimated})
    res.lines.append(f"denoise: pretrained:gray on the held-out '{HELD_OUT}' at sigma {SIGMA:g} (estimated "
                     f"from the image: {estimated:.1f}): noisy {p_noisy:.2f} dB -> denoised {p_den:.2f} dB; "
                     f"picture {pic}")
