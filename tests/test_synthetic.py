"""The synthetic anomaly families of label-free selection (aedetect.anomaly.selection.synthetic), on real
images: scikit-learn's 8x8 digits (object-like, black background) and crops of scikit-image's
grass (a texture), grey, plus an RGB photograph crop for the colour shift."""

from __future__ import annotations

import numpy as np
import pytest

from aedetect.anomaly.selection.synthetic import (
    FAMILIES,
    GLOBAL,
    LOCAL,
    make_anomalies,
    make_anomaly,
)
from aedetect.core.config import DataConfig
from aedetect.data.sources import load_digits, texture_crops


def _digits() -> np.ndarray:
    d = load_digits(DataConfig(channels=1), normal_class=3)
    return d.images[:12].numpy().astype(np.float32) / d.max_value


def _grass() -> np.ndarray:
    return texture_crops("grass", 32, 64, rows=(0.0, 0.5))[:12].numpy().astype(np.float32) / 255


def _rgb() -> np.ndarray:
    from skimage import data

    img = data.astronaut()[:256:4, :256:4].astype(np.float32) / 255  # 64x64x3
    return np.stack([img.transpose(2, 0, 1), img[::-1].transpose(2, 0, 1).copy()])


SETS = {"digits": _digits, "grass": _grass, "rgb": _rgb}


@pytest.mark.parametrize("family", list(LOCAL))
@pytest.mark.parametrize("data", list(SETS))
def test_local_family_changes_only_pixels_inside_its_mask(family: str, data: str) -> None:
    x = SETS[data]()
    out, masks = make_anomalies(x, family, seed=3)
    assert out.shape == x.shape and out.dtype == x.dtype and masks.shape == (x.shape[0], *x.shape[2:])
    diff = np.abs(out - x).max(1)
    assert np.all(diff[~masks] == 0), "a pixel outside the mask changed"
    assert np.all(diff[masks] > 0), "the mask holds a pixel that did not change"
    assert masks.sum(axis=(1, 2)).min() > 0, "an image was left unchanged"
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_is_deterministic_from_its_seed_and_changes_the_image(family: str) -> None:
    x = np.concatenate([_digits(), _grass()[:, :, :8, :8]])
    a, ma = make_anomalies(x, family, seed=11)
    b, mb = make_anomalies(x, family, seed=11)
    c, _ = make_anomalies(x, family, seed=12)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(a, c), "another seed gave the same anomalies"
    changed = np.abs(a - x).reshape(len(x), -1).max(1)
    assert np.all(changed > 2 / 255), f"{family}: {int((changed <= 2 / 255).sum())} images unchanged"
    assert np.all(ma.sum(axis=(1, 2)) > 0)


def test_global_families_change_much_of_an_object_image() -> None:
    """What sets the global families apart: on digits they move a large share of the ink."""
    x = _digits()
    for family in GLOBAL:
        out, _ = make_anomalies(x, family, seed=0)
        moved = np.abs(out - x).sum(axis=(1, 2, 3)) / x.sum(axis=(1, 2, 3))
        assert np.median(moved) > 0.1, (family, float(np.median(moved)))


def test_unknown_family_is_named() -> None:
    x = _digits()
    with pytest.raises(ValueError, match="unknown anomaly family 'bogus'"):
        make_anomaly("bogus", x[0], x[1], np.random.default_rng(0))
