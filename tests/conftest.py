"""Shared fixtures: small real data, offline dataset root, quiet matplotlib."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("MPLBACKEND", "Agg")
if SHARED_DATA.is_dir():
    # Datasets by name (mnist) are read from the offline copy beside the checkout.
    os.environ.setdefault("AEDETECT_DATA_ROOT", str(SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip("offline MNIST copy (../shared/data) not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as uint8 images and their classes."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.rint(d.images * (255 / 16)).astype(np.uint8), d.target


@pytest.fixture()
def digit_folder(tmp_path: Path, digits_uint8: tuple[np.ndarray, np.ndarray]) -> Path:
    """A folder of 120 real digit PNGs (16x16, upscaled) in two sub-folders, plus one corrupt file."""
    images, _ = digits_uint8
    root = tmp_path / "digits"
    for i in range(120):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).resize((16, 16), Image.NEAREST).save(sub / f"d{i:03d}.png")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    return root
