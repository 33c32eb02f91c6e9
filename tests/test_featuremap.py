"""The ``features`` anomaly map localises defects on a stochastic texture where the
reconstruction error cannot, and its bank survives the model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aedetect import AnomalyDetector
from aedetect.data.defects import defect_test_set
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops
from aedetect.errors import ConfigError
from aedetect.metrics import pixel_auroc
from aedetect.presets import build_config
from aedetect.tasks.anomaly import AnomalySettings, run_model


@pytest.fixture(scope="module")
def grass():  # type: ignore[no-untyped-def]
    """A detector trained briefly on crops of the top three quarters of scikit-image's grass,
    and held-out crops of the bottom quarter, half with synthetic defects and exact masks."""
    crops = texture_crops("grass", 64, 24, rows=(0.0, 0.75))
    det = AnomalyDetector(preset="small", epochs=15, anomaly={"map": "features", "feature_bank": 8000},
                          overrides={"model": {"latent_channels": 4},
                                     "train": {"batch_size": 32, "lr": 2e-3, "patience": 100}}).fit(ImageSet(images=crops))
    return det, defect_test_set("grass", 64, 24, rows=(0.75, 1.0), seed=1)


def test_features_map_beats_the_reconstruction_error_on_grass(grass) -> None:  # type: ignore[no-untyped-def]
    det, test = grass
    masks = test.masks[:, 0].numpy()
    features = pixel_auroc(masks, det.score(test, keep_images=False).maps)
    mse = AnomalySettings.from_config({"map": "mse"})
    raw = run_model(det.model_, test.images, test.max_value, det.config_, mse, keep_images=False)
    reconstruction = pixel_auroc(masks, raw.maps[:, 0].numpy())
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
