"""ELPV: real defects for the anomaly suite (bench/anomaly_suite.py, row ``elpv``).

2,624 electroluminescence images (300x300, 8-bit gray) of solar cells from 44 modules, each with
an expert's defect probability 0 / 0.33 / 0.67 / 1 and its cell type (mono, poly): the
``elpv-dataset`` package (Apache-2.0 code, CC BY-NC-SA 4.0 images; the ``bench`` extra, never a
runtime dependency).

One case per cell type. Training: 70 % of its functional cells (probability 0, a split seeded
by the suite's seed). Test: the other 30 % against the defective cells (probability 1) and,
reported apart, against the probably-defective ones (0.67). The defective cells of each type are
cut once, by a fixed seed, into a validation half (for choosing methods and settings: the
exploration benches read only it) and a test half (the suite's figures); the suite never reads
the validation half.

The cells go through the folder path a user's images take: written as PNG files into a folder,
``aedetect fit`` on it with every default, then scored as the model file brings them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aedetect.data.imageset import ImageSet

KINDS = ("mono", "poly")
DEFECT_SPLIT_SEED = 1234
TRAIN_FRACTION = 0.7


@lru_cache(maxsize=1)
def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (N, 300, 300) uint8, defect probabilities, cell types), from the package."""
    try:
        from elpv_dataset.utils import load_dataset
    except ImportError as e:
        raise SystemExit("the elpv row needs the bench extra: pip install -e '.[bench]'") from e
    images, probs, types = load_dataset()
    return images, np.round(probs * 3).astype(int), np.asarray(types)  # probability in thirds: 0..3


def split(kind: str, seed: int, part: str = "test") -> dict[str, np.ndarray]:
    """Indices of one case: ``train`` and ``normal`` (held-out functional cells, by ``seed``),
    ``defective`` (probability 1) and ``likely`` (0.67) of the ``part`` half (``validation`` or
    ``test``, fixed by :data:`DEFECT_SPLIT_SEED`)."""
    if kind not in KINDS or part not in ("validation", "test"):
        raise ValueError(f"elpv: unknown case {kind!r} / part {part!r}")
    _, thirds, types = load()
    normal = np.flatnonzero((types == kind) & (thirds == 0))
    normal = normal[np.random.default_rng(seed).permutation(len(normal))]
    cut = int(TRAIN_FRACTION * len(normal))
    out = {"train": np.sort(normal[:cut]), "normal": np.sort(normal[cut:])}
    for name, third in (("defective", 3), ("likely", 2)):
        idx = np.flatnonzero((types == kind) & (thirds == third))
        idx = idx[np.random.default_rng(DEFECT_SPLIT_SEED).permutation(len(idx))]
        half = len(idx) // 2
        out[name] = np.sort(idx[:half] if part == "validation" else idx[half:])
    return out


def write_folder(index: np.ndarray, folder: Path) -> list[Path]:
    """The cells as PNG files (``cellNNNN.png``, the package's numbering), as a user has them."""
    images, _, _ = load()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in index:
        p = folder / f"cell{int(i):04d}.png"
        Image.fromarray(images[i]).save(p)
        paths.append(p)
    return paths


def imageset(index: np.ndarray, labels: np.ndarray | None = None, side: int | None = None) -> ImageSet:
    """The cells as one ImageSet (N, 1, H, W) uint8, optionally brought to ``side`` x ``side``
    (area-averaged: the raw-pixel baselines' input)."""
    images, _, _ = load()
    x = torch.from_numpy(images[index]).unsqueeze(1)
    if side is not None and side != x.shape[-1]:
        x = torch.nn.functional.interpolate(x.float(), size=(side, side), mode="area").round().clamp(0, 255).to(torch.uint8)
    return ImageSet(images=x, labels=None if labels is None else torch.as_tensor(labels, dtype=torch.long))
