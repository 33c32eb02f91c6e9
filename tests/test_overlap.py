"""Calibration images that share pixels with the training images (aedetect.anomaly.calibration.overlap), and
``fit --calibration`` / ``AnomalyDetector.fit(calibration=...)``, the way to calibrate on
separate images. Real data: scikit-image's grass and brick, cut into overlapping crops."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import save_png

from aedetect import AnomalyDetector
from aedetect.anomaly.jobs.calibrate import new_calibration
from aedetect.anomaly.calibration.overlap import calibration_overlap
from aedetect.anomaly.calibration.reliability import reliability_line
from aedetect.cli import app
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import load_digits, texture_crops
from aedetect.core.config import DataConfig
from aedetect.core.modelfile.file import read_metadata

runner = CliRunner()
QUICK = {"model": {"latent_channels": 4}, "train": {"batch_size": 32, "lr": 2e-3, "patience": 100}}


def _random_split(crops: torch.Tensor, n_calib: int) -> tuple[np.ndarray, np.ndarray]:
    p = torch.randperm(len(crops), generator=torch.Generator().manual_seed(0))
    return crops[p[:n_calib]].numpy(), crops[p[n_calib:]].numpy()


def test_a_random_split_of_overlapping_crops_is_found_and_separate_bands_are_not() -> None:
    crops = texture_crops("grass", 64, 16, rows=(0.0, 0.75))
    calib, train = _random_split(crops, 60)
    found = calibration_overlap(calib, train)
    assert found is not None and found.images == found.of == 60 and found.block_fraction > 0.95 and found.worrying
    top = texture_crops("brick", 64, 16, rows=(0.0, 0.5)).numpy()
    below = texture_crops("brick", 64, 16, rows=(0.5, 0.75)).numpy()
    apart = calibration_overlap(below, top)
    assert apart is not None and apart.images == 0 and apart.block_fraction == 0.0 and not apart.worrying
    # one crop shifted by 3 pixels still shares its interior blocks (any offset counts)
    shifted = texture_crops("brick", 64, 3, rows=(0.5, 0.75))[1:2].numpy()
    assert calibration_overlap(shifted, below[:1]).images == 1  # type: ignore[union-attr]


def test_distinct_images_do_not_count_and_tiny_images_are_not_judged() -> None:
    """Distinct photographs share no block (flat blocks, which match anywhere, are not counted);
    8x8 digits are too small to tell shared pixels from chance and get no verdict."""
    grass = texture_crops("grass", 64, 64, rows=(0.0, 1.0)).numpy()  # non-overlapping tiles
    flat = np.zeros((4, 1, 64, 64), dtype=np.uint8)
    found = calibration_overlap(np.concatenate([grass[:8], flat]), np.concatenate([grass[8:], flat]))
    assert found is not None and found.images == 0 and found.of == 8
    digits = load_digits(DataConfig(channels=1), normal_class=3).images.numpy()
    assert calibration_overlap(digits[:20], digits[20:]) is None


def test_the_head_warns_about_an_overlapping_calibration_split_and_calibration_fixes_it(caplog) -> None:  # type: ignore[no-untyped-def]
    crops = texture_crops("grass", 64, 16, rows=(0.0, 0.5))
    with caplog.at_level(logging.WARNING, logger="aedetect"):
        det = AnomalyDetector(preset="small", epochs=1, anomaly={"select": "none"}, overrides=QUICK).fit(ImageSet(images=crops))
    rec = det.calibration_["overlap_with_training"]
    assert rec["images"] == rec["of"] == det.calibration_["calib_images"] > 10
    assert sum("share most of their pixels with training images" in r.message for r in caplog.records) == 1
    assert "share most of their pixels with training images" in reliability_line(det.calibration_)  # type: ignore[operator]
    # `aedetect calibrate` on separate normal images replaces the threshold and the finding
    band = ImageSet(images=texture_crops("grass", 64, 16, rows=(0.5, 0.75)))
    scores = det.score(band, keep_images=False).scores
    again = new_calibration(det.calibration_, np.zeros(len(band), dtype=int), scores, "fpr")
    assert "overlap_with_training" not in again and again["calib_images"] == len(band)
    assert "share most" not in reliability_line(again) and f"from {len(band)} calibration images" in reliability_line(again)  # type: ignore[operator]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aedetect"):
        sep = AnomalyDetector(preset="small", epochs=1, anomaly={"select": "none"}, overrides=QUICK).fit(
            ImageSet(images=crops), calibration=band)
    assert sep.calibration_["overlap_with_training"]["images"] == 0
    assert sep.calibration_["calib_images"] == len(band)
    assert not any("share most of their pixels" in r.message for r in caplog.records)


def test_fit_calibration_folder_on_the_command_line(tmp_path: Path) -> None:
    """``aedetect fit DATA --calibration DIR``: every image of DATA trains (no calibration part
    is carved out of it), DIR's images set the threshold, and the model file says so."""
    for name, rows in (("train", (0.0, 0.5)), ("calib", (0.5, 0.75))):
        for i, c in enumerate(texture_crops("brick", 32, 32, rows=rows)[:40]):
            save_png(tmp_path / name / f"{i}.png", c[0].numpy())
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", str(tmp_path / "train"), "--preset", "small", "--epochs", "1", "--out", str(out),
                            "--calibration", str(tmp_path / "calib"), "--set", "anomaly.select=none"])
    assert r.exit_code == 0, r.output
    meta = read_metadata(out / "model.safetensors")
    n_calib = len(list((tmp_path / "calib").glob("*.png")))
    assert meta["calibration"]["calib_images"] == n_calib and meta["calibration"]["overlap_with_training"]["images"] == 0
    tr = meta["training"]
    assert tr["calib_images"] == n_calib and tr["calibration_data"] == str(tmp_path / "calib")
    assert tr["train_images"] + tr["val_images"] == tr["images"] == len(list((tmp_path / "train").glob("*.png")))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"]["calibration_data"] == str(tmp_path / "calib")


@pytest.mark.parametrize("extra, good_calib, needle", [
    (["--task", "denoise"], 12, "--calibration: only the anomaly task calibrates"),
    ([], 1, "needs at least 2 usable images (got 1)"),
])
def test_fit_calibration_errors_are_one_line(tmp_path: Path, extra: list[str], good_calib: int, needle: str) -> None:
    crops = texture_crops("brick", 32, 32, rows=(0.0, 0.5))[:12]
    for i, c in enumerate(crops):
        save_png(tmp_path / "train" / f"{i}.png", c[0].numpy())
        if i < good_calib:
            save_png(tmp_path / "calib" / f"{i}.png", c[0].numpy())
        else:  # a corrupt file costs a warning, not the run; too few usable ones stop it
            (tmp_path / "calib" / f"{i}.png").write_bytes(b"not a png")
    r = runner.invoke(app, ["fit", str(tmp_path / "train"), "--preset", "small", "--epochs", "1",
                            "--out", str(tmp_path / "run"), "--calibration", str(tmp_path / "calib"), *extra])
    assert r.exit_code != 0
    assert len([ln for ln in r.output.splitlines() if needle in ln]) == 1, r.output
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_large_training_set_is_sampled_and_still_finds_overlapping_crops(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Beyond MAX_WINDOWS training windows only a seeded sample of training images is hashed
    (memory and time stay bounded), and the record says so; each crop of a picture overlaps
    many training crops, so a sample still finds them."""
    import aedetect.anomaly.calibration.overlap as ov

    crops = texture_crops("gravel", 64, 16, rows=(0.0, 0.75))
    calib, train = _random_split(crops, 40)
    monkeypatch.setattr(ov, "MAX_WINDOWS", 57 * 57 * 100)  # 100 of the training crops
    found = ov.calibration_overlap(calib, train)
    assert found is not None and found.sampled and found.images >= 30 and found.worrying
