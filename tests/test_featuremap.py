"""The ``features`` anomaly map localises defects on a stochastic texture where the
reconstruction error cannot, and its bank survives the model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aedetect import AnomalyDetector
from aedetect.errors import ConfigError
from aedetect.core.presets import build_config
from aedetect.anomaly.settings import AnomalySettings
from conftest import grass_detector, map_vs_reconstruction


@pytest.fixture(scope="module")
def grass():  # type: ignore[no-untyped-def]
    return grass_detector({"map": "features", "feature_bank": 8000})


def test_features_map_beats_the_reconstruction_error_on_grass(grass) -> None:  # type: ignore[no-untyped-def]
    features, reconstruction = map_vs_reconstruction(*grass)
    # Measured in two runs: 0.879 / 0.849 against 0.630 / 0.654 for the squared error.
    assert features > 0.75
    assert features > reconstruction + 0.1


def test_bank_round_trips_through_the_model_file(grass, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    det, test = grass
    assert det.calibration_["feature_bank"]["shape"] == [8000, 32]
    again = AnomalyDetector.load(det.save(tmp_path / "m.safetensors"))
    a, b = det.score(test, keep_images=False), again.score(test, keep_images=False)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    np.testing.assert_array_equal(a.flags, b.flags)


def test_bad_feature_settings_fail_with_one_line() -> None:
    with pytest.raises(ConfigError, match="anomaly.feature_pool"):
        AnomalySettings.from_config({"map": "features", "feature_pool": 4})
    with pytest.raises(ConfigError, match="anomaly.feature_level"):
        AnomalySettings.from_config({"feature_level": -1})
    # Checked against the model before any training: the 'small' preset has 3 levels.
    with pytest.raises(ConfigError, match="anomaly.feature_level: 3 is not a level"):
        build_config("small", overrides={"anomaly": {"map": "features", "feature_level": 3}})
    with pytest.raises(ConfigError, match="needs a convolutional model"):
        build_config("mlp", overrides={"anomaly": {"map": "features"}})
