"""Model files written before the package layout of issue 10 load and give the recorded outputs.

The files and the outputs were written at commit a536945 by tests/fixtures/legacy/make.py
(an anomaly model on scikit-learn's digits with a latent kNN bank in its calibration, and a
small denoise U-Net). A refactor that changes how a file is read, or what the model computes,
fails here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

import aedetect

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"


def _make_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("legacy_make", LEGACY / "make.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_legacy_anomaly_model_scores_as_recorded() -> None:
    recorded = json.loads((LEGACY / "anomaly-digits.json").read_text())
    _, test = _make_module().digits_sets()
    det = aedetect.AnomalyDetector.load(LEGACY / "anomaly-digits.safetensors", device="cpu")
    r = det.score(test, keep_images=False)
    np.testing.assert_allclose(r.scores, recorded["scores"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r.normalized, recorded["normalized"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(r.flags.astype(int), recorded["flags"])
    np.testing.assert_allclose(r.maps.reshape(len(test), -1).sum(1), recorded["map_sums"], rtol=1e-5)
    assert 0 < sum(recorded["flags"]) < len(test)  # the record is not trivially all-or-nothing


def test_legacy_denoise_model_output_as_recorded() -> None:
    recorded = np.load(LEGACY / "denoise-gray-camera.npy")
    _, noisy = _make_module().noisy_crop()
    out = aedetect.Denoiser.load(LEGACY / "denoise-gray.safetensors", device="cpu").denoise(noisy)
    assert out.dtype == recorded.dtype and out.shape == recorded.shape
    assert int(np.abs(out.astype(int) - recorded.astype(int)).max()) <= 1
    assert float(np.mean(out != noisy)) > 0.5  # the recorded output is a real denoising, not a copy


def test_legacy_model_file_loads_with_its_config() -> None:
    mf = aedetect.load(LEGACY / "anomaly-digits.safetensors")
    assert mf.config.task == "anomaly" and tuple(mf.config.model.widths) == (8, 16)
    assert "latent_bank" in mf.calibration and mf.calibration["threshold"] > 0
