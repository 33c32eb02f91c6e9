"""The anomaly head on real data: separation, calibration, settings, model-file round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aedetect import AnomalyDetector
from aedetect.core.config import DataConfig
from aedetect.anomaly.selection.defects import add_defect, defect_test_set
from aedetect.data.sources import load_digits
from aedetect.errors import ConfigError
from aedetect.anomaly.evaluate.metrics import image_auroc
from aedetect.anomaly.maps.family import smooth
from aedetect.anomaly.maps.run import image_score
from aedetect.anomaly.settings import AnomalySettings
from aedetect.anomaly.calibration.threshold import normalise, threshold_at_fpr

FAST = {"train": {"batch_size": 32, "lr": 3e-3, "patience": 100}}


def _digits(normal_class: int | None = None, only_normal: bool = True):  # type: ignore[no-untyped-def]
    return load_digits(DataConfig(channels=1), normal_class=normal_class, only_normal=only_normal)


@pytest.fixture(scope="module")
def one_class_split():  # type: ignore[no-untyped-def]
    """Digit 0 is normal: 70 % of the zeros train, the other zeros and all other digits test."""
    full = _digits(0, only_normal=False)
    zeros = torch.nonzero(full.labels == 0).ravel()
    perm = zeros[torch.randperm(len(zeros), generator=torch.Generator().manual_seed(0))]
    n_train = int(len(zeros) * 0.7)
    train = full.subset(perm[:n_train])
    rest = sorted(set(range(len(full))) - set(perm[:n_train].tolist()))
    return train, full.subset(rest)


@pytest.fixture(scope="module")
def zero_detector(one_class_split):  # type: ignore[no-untyped-def]
    train, _ = one_class_split
    return AnomalyDetector(preset="small", epochs=25, overrides=FAST).fit(train)


def test_detector_separates_held_out_digits(zero_detector, one_class_split) -> None:  # type: ignore[no-untyped-def]
    _, test = one_class_split
    res = zero_detector.score(test)
    labels = test.labels.numpy()
    assert image_auroc(labels, res.scores) > 0.97
    # the score points the documented way: anomalies score higher on average
    assert res.scores[labels == 1].mean() > res.scores[labels == 0].mean()
    assert res.maps.shape == (len(test), 8, 8)
    assert np.array_equal(res.flags, res.scores > zero_detector.threshold_)
    # the normalised score maps the threshold to 0.5, monotonically
    assert np.all((res.normalized > 0.5) == res.flags)
    order = np.argsort(res.scores)
    assert np.all(np.diff(res.normalized[order]) >= 0)


def test_calibration_holds_target_fpr_on_fresh_normals() -> None:
    """Train on most digits (all classes normal); a 10 % target FPR holds on unseen digits."""
    full = _digits()
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(1))
    train, fresh = full.subset(perm[:1300]), full.subset(perm[1300:])
    det = AnomalyDetector(preset="small", epochs=5, anomaly={"target_fpr": 0.1, "calib_fraction": 0.2},
                          overrides=FAST).fit(train)
    assert det.calibration_["calib_images"] >= 150
    fpr = float(det.predict(fresh).mean())
    assert 0.04 <= fpr <= 0.18, fpr


def test_save_load_round_trip_and_f1_threshold(zero_detector, one_class_split, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, test = one_class_split
    path = zero_detector.save(tmp_path / "m.safetensors")
    again = AnomalyDetector.load(path)
    assert again.threshold_ == zero_detector.threshold_
    np.testing.assert_allclose(again.anomaly_score(test), zero_detector.anomaly_score(test), rtol=1e-5)
    from aedetect.anomaly.calibration.threshold import f1_threshold
    from aedetect.anomaly.evaluate.metrics import best_f1

    scores = zero_detector.anomaly_score(test)
    cal = f1_threshold(zero_detector.calibration_, test.labels.numpy(), scores)
    assert cal["threshold_rule"] == "f1"
    assert cal["validation_best_f1"] == pytest.approx(best_f1(test.labels.numpy(), scores)[0])
    assert normalise(np.array([cal["threshold"]]), cal)[0] == pytest.approx(0.5)


def test_settings_are_validated_with_the_key_named() -> None:
    with pytest.raises(ConfigError, match=r"anomaly\.map: 'bogus' is not one of mse, l1, ssim, mix"):
        AnomalySettings.from_config({"map": "bogus"})
    with pytest.raises(ConfigError, match=r"anomaly\.nope: unknown key"):
        AnomalySettings.from_config({"nope": 1})
    with pytest.raises(ConfigError, match=r"anomaly\.target_fpr"):
        AnomalySettings.from_config({"target_fpr": 0})
    with pytest.raises(ConfigError, match=r"anomaly\.ssim_window"):
        AnomalySettings.from_config({"ssim_window": 10})


def test_scores_threshold_and_smoothing_helpers() -> None:
    m = torch.zeros(1, 1, 10, 10)
    m[0, 0, 0, :5] = 1.0
    assert image_score(m, "max").item() == 1.0
    assert image_score(m, "mean").item() == pytest.approx(0.05)
    assert image_score(m, "topk", 5.0).item() == pytest.approx(1.0)
    assert image_score(m, "topk", 10.0).item() == pytest.approx(0.5)
    m = torch.zeros(1, 1, 16, 16)
    m[0, 0, 8, 5:10] = 1.0  # away from the border, blurring keeps the mass
    sm = smooth(m, 1.0)
    assert sm.sum().item() == pytest.approx(m.sum().item(), rel=0.05) and sm.max() < 1.0
    normal = np.arange(100, dtype=float)
    t = threshold_at_fpr(normal, 0.05)  # the conformal rank ceil(0.95 x 101) = 96: 4 of 100 above
    assert t == 95.0 and (normal > t).mean() == pytest.approx(0.04)
    assert threshold_at_fpr(normal, 0.01) == 99.0  # 100 images resolve 1 %: the highest score


def test_synthetic_defects_have_exact_masks() -> None:
    rng = np.random.default_rng(0)
    img = (np.random.default_rng(1).random((64, 64)) * 100 + 80).astype(np.uint8)
    foreign = np.zeros((128, 128), np.uint8)
    for kind in ("patch", "scratch", "stain", "missing"):
        out, mask = add_defect(img, kind, rng, foreign)
        assert mask.any(), kind
        assert np.array_equal(out != img, mask), kind  # the mask is exactly the changed pixels
    test = defect_test_set("brick", 64, 64, rows=(0.75, 1.0), seed=0)
    assert test.labels is not None and test.masks is not None
    assert int(test.labels.sum()) == int((test.masks.flatten(1).amax(1) > 0).sum())


def test_fpr_interval_says_what_a_small_calibration_set_can_promise() -> None:
    """82 normal images and a 1 % target: the threshold is the highest score, and the rate on
    new normal images lies in Beta(1, 82)'s 90 % interval, 0.06 % to 3.6 % (issue 12: the demo
    flagged 8.2 % of new normal crops at a 1 % target)."""
    import numpy as np
    from scipy.stats import beta

    from aedetect.anomaly.calibration.reliability import fpr_interval, reliability_line
    from aedetect.anomaly.calibration.threshold import set_threshold

    lo, hi = fpr_interval(82, 0)
    assert lo == pytest.approx(1 - 0.95 ** (1 / 82)) and hi == pytest.approx(1 - 0.05 ** (1 / 82))
    assert 0.0005 < lo < 0.0007 and 0.035 < hi < 0.037
    assert fpr_interval(5000, 50) == pytest.approx((beta.ppf(0.05, 51, 4950), beta.ppf(0.95, 51, 4950)))
    assert fpr_interval(10, 10) == (0.0, 1.0)
    # Checked against simulation: thresholds from 82 normal scores, the share of fresh normals above.
    rng = np.random.default_rng(0)
    rates = [float((rng.normal(size=20000) > rng.normal(size=82).max()).mean()) for _ in range(400)]
    assert 0.85 < np.mean([(lo <= r <= hi) for r in rates]) < 0.95
    cal: dict = {"calib_images": 82, "target_fpr": 0.01}
    set_threshold(cal, 2.5, "fpr", rng.normal(size=82))
    assert cal["fpr_interval_90"][1] > cal["fpr_interval_90"][0] and "90 % interval from 82" in reliability_line(cal)
