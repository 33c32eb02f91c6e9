"""Shared fixtures: small real data, offline dataset root, quiet matplotlib."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("MPLBACKEND", "Agg")
# Under pytest-xdist the workers share the cores: each worker, and every process a test starts,
# gets its share of threads instead of all of them (set before torch is imported).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _SHARE = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    os.environ.setdefault("OMP_NUM_THREADS", _SHARE)
    os.environ.setdefault("MKL_NUM_THREADS", _SHARE)
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


@pytest.fixture(scope="session")
def digits():  # type: ignore[no-untyped-def]
    """scikit-learn's digits as a labelled ImageSet: class 0 normal, the others anomalous."""
    from aedetect.core.config import DataConfig
    from aedetect.data.sources import load_digits

    return load_digits(DataConfig(channels=1), normal_class=0, only_normal=False)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory, digits) -> Path:  # type: ignore[no-untyped-def]
    """An anomaly autoencoder trained on the first 120 zeros (``autoencoder = on``: the
    ImageNet features alone would do here, aedetect.anomaly.selection.plan, and these tests are about a
    model with a network); fit calibrates it for a 1 % FPR on held-out zeros. Shared by the
    score and calibrate tests (none of them writes to it)."""
    from aedetect import AnomalyDetector

    zeros = digits.subset(np.flatnonzero(digits.labels.numpy() == 0)[:120].tolist())
    det = AnomalyDetector(preset="small", epochs=15, anomaly={"autoencoder": "on"},
                          overrides={"train": {"batch_size": 32, "lr": 3e-3, "patience": 100}}).fit(zeros)
    return det.save(tmp_path_factory.mktemp("model") / "model.safetensors")


def save_png(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` as a PNG, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def grass_detector(anomaly: dict):  # type: ignore[no-untyped-def,type-arg]
    """A detector trained briefly (15 epochs) on crops of the top three quarters of
    scikit-image's grass with the given ``Config.anomaly``, and held-out crops of the bottom
    quarter, half with synthetic defects and exact masks: the stochastic-texture case where the
    reconstruction error cannot localise defects."""
    from aedetect import AnomalyDetector
    from aedetect.anomaly.selection.defects import defect_test_set
    from aedetect.data.imageset import ImageSet
    from aedetect.data.sources import texture_crops

    crops = texture_crops("grass", 64, 24, rows=(0.0, 0.75))
    det = AnomalyDetector(preset="small", epochs=15, anomaly=anomaly,
                          overrides={"model": {"latent_channels": 4},
                                     "train": {"batch_size": 32, "lr": 2e-3, "patience": 100}}).fit(ImageSet(images=crops))
    return det, defect_test_set("grass", 64, 24, rows=(0.75, 1.0), seed=1)


def map_vs_reconstruction(det, test) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Pixel AUROC of the detector's own map and of the squared-error map of the same model."""
    from aedetect.anomaly.evaluate.metrics import pixel_auroc
    from aedetect.anomaly.maps.run import run_model
    from aedetect.anomaly.settings import AnomalySettings

    masks = test.masks[:, 0].numpy()
    own = pixel_auroc(masks, det.score(test, keep_images=False).maps)
    raw = run_model(det.model_, test.images, test.max_value, det.config_, AnomalySettings.from_config({"map": "mse"}),
                    keep_images=False)
    return own, pixel_auroc(masks, raw.maps[:, 0].numpy())


def rewrite_model_meta(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Edit the aedetect JSON record of a model file in place (``edit(meta)``), keeping the
    tensors as they are: what someone editing a model file by hand does."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["aedetect"])
    edit(meta)
    header["__metadata__"]["aedetect"] = json.dumps(meta)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + raw[8 + n:])


def untrained_model(path: Path, channels: int = 1) -> Path:
    """A denoise model file with random weights: enough for I/O and safety behaviour."""
    import torch

    from aedetect.core.model.cae import ConvAutoencoder
    from aedetect.core.modelfile.file import save_model
    from aedetect.core.presets import build_config

    cfg = build_config("denoise-unet", overrides={"data": {"channels": channels},
                                                  "model": {"widths": [8, 16], "convs_per_level": 1}})
    torch.manual_seed(0)
    save_model(path, ConvAutoencoder(cfg.model), cfg)
    return path
