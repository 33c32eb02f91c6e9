"""metrics.json: test MSE from test/good of an MVTec AD folder, from a dataset's test split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aedetect.core.config import DataConfig
from aedetect.core.training.fit import fit
from aedetect.core.training.runmetrics import load_test_split
from aedetect.core.presets import build_config


def write_pngs(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    for i in range(n):
        img = 128 + 60 * np.sin(xx / 2 + rng.uniform(0, 6)) + rng.normal(0, 5, (16, 16))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


def test_mvtec_folder_gets_test_mse(tmp_path: Path) -> None:
    root = tmp_path / "bottle"
    write_pngs(root / "train" / "good", 40, 0)
    write_pngs(root / "test" / "good", 7, 1)
    cfg = build_config("small", overrides={"model": {"widths": [8]}, "data": {"size": [16, 16]},
                                           "train": {"epochs": 1, "device": "cpu"}, "anomaly": {"autoencoder": "on"}})
    out = fit(str(root), cfg, tmp_path / "run")
    m = json.loads((out.run_dir / "metrics.json").read_text())
    assert m["test_images"] == 7 and m["test_split"].endswith("good")
    assert math.isfinite(m["test_mse"]) and m["test_mse"] > 0 and m["test_reason"] is None
    assert m["val_mse_unit"] == pytest.approx(m["val_mse"])  # unit scaling: the same number


def test_plain_folder_has_no_test_split(tmp_path: Path) -> None:
    write_pngs(tmp_path / "imgs", 3, 0)
    cfg = build_config("small", overrides={"data": {"size": [16, 16]}})
    test, reason = load_test_split(str(tmp_path / "imgs"), cfg)
    assert test is None and "no test split" in reason
    test, reason = load_test_split("digits", cfg)
    assert test is None and "no separate test split" in reason


def test_symmetric_scaling_reports_both_scales(tmp_path: Path) -> None:
    from aedetect.data.sources import load_digits
    from aedetect.core.training.runmetrics import reconstruction_mse
    from aedetect.core.model.cae import ConvAutoencoder

    cfg = build_config("small", overrides={"model": {"widths": [8]}, "data": {"size": [8, 8], "scaling": "symmetric"}})
    data = load_digits(DataConfig(channels=1, size=(8, 8))).subset(list(range(50)))
    mse, unit = reconstruction_mse(ConvAutoencoder(cfg.model), data, cfg)
    # [-1, 1] errors are twice the [0, 1] ones (the tanh output never clamps inside the range)
    assert mse == pytest.approx(4 * unit, rel=1e-4)
