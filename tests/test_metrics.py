"""Anomaly metrics against scikit-learn and against answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from aedetect.anomaly.evaluate.metrics import (aupro, best_f1, f1_at_threshold, image_ap, image_auroc, image_metrics,
                              pixel_auroc, pro_curve)


def test_image_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y * 0.8
    assert image_auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert image_ap(y, s) == pytest.approx(average_precision_score(y, s))
    assert f1_at_threshold(y, s, 0.3) == pytest.approx(f1_score(y, s > 0.3))


def test_hand_made_auroc_and_f1() -> None:
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    # pairs (normal, anomalous): (0.1,0.35) ok, (0.1,0.8) ok, (0.4,0.35) wrong, (0.4,0.8) ok -> 3/4
    assert image_auroc(y, s) == pytest.approx(0.75)
    f1, t = best_f1(y, s)
    # flag {0.8}: P=1 R=.5 F1=.667; flag {0.35,0.4,0.8}: P=2/3 R=1 F1=.8 -> best 0.8
    assert f1 == pytest.approx(0.8)
    assert f1_at_threshold(y, s, t) == pytest.approx(0.8)
    m = image_metrics(y, s, threshold=0.5)
    assert m["f1_at_threshold"] == pytest.approx(2 / 3)
    assert m["fpr_at_threshold"] == 0.0 and m["recall_at_threshold"] == 0.5


def test_pixel_auroc_is_auroc_over_pixels() -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 16, 16), np.uint8)
    masks[:, 4:8, 4:8] = 1
    maps = rng.random((3, 16, 16)) + masks * 0.5
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))


def test_aupro_perfect_and_random_and_known_case() -> None:
    masks = np.zeros((2, 20, 20), np.uint8)
    masks[0, 2:4, 2:4] = 1      # a small region (4 px)
    masks[1, 10:20, 0:10] = 1   # a large region (100 px)
    assert aupro(masks, masks.astype(float)) == pytest.approx(1.0)
    # A constant map: one threshold jumps from (0, 0) to (1, 1); area to 0.3 is 0.045 -> 0.15.
    assert aupro(masks, np.zeros(masks.shape)) == pytest.approx(0.15)
    # Only the small region is found (above every normal pixel), the large one never beats the
    # normals: PRO is 0.5 from FPR 0 on (each region weighs 1/2 however large it is), then the
    # remaining ties (large region + normals, all 0) jump to (1, 1) linearly.
    maps = np.zeros(masks.shape)
    maps[0, 2:4, 2:4] = 1.0
    fpr, pro = pro_curve(masks, maps)
    assert pro[1] == pytest.approx(0.5) and fpr[1] == 0.0
    # area to 0.3 under the line from (0, 0.5) to (1, 1): 0.3*0.5 + 0.5*0.3*0.15 = 0.1725
    assert aupro(masks, maps) == pytest.approx(0.1725 / 0.3)


def test_aupro_weights_regions_not_pixels() -> None:
    masks = np.zeros((1, 30, 30), np.uint8)
    masks[0, 0:2, 0:2] = 1
    masks[0, 10:30, 10:30] = 1
    found_big = masks * 0.0
    found_big[0, 10:30, 10:30] = 1
    found_small = masks * 0.0
    found_small[0, 0:2, 0:2] = 1
    # Pixel AUROC loves finding the big region; AUPRO counts both regions the same.
    assert pixel_auroc(masks, found_big) > pixel_auroc(masks, found_small)
    assert aupro(masks, found_big) == pytest.approx(aupro(masks, found_small), abs=1e-9)


def test_streamed_pixel_metrics_match_the_exact_ones() -> None:
    """PixelMetrics (batch by batch, no maps kept) = pixel_auroc/aupro over all maps at once:
    exactly for float16-valued maps (ties included), to 1e-3 for float32 maps."""
    from aedetect.anomaly.evaluate.metrics import PixelMetrics

    rng = np.random.default_rng(1)
    masks = np.zeros((10, 24, 24), np.uint8)
    for i in range(1, 10, 2):
        r, c = rng.integers(0, 18, 2)
        masks[i, r:r + rng.integers(1, 6), c:c + rng.integers(1, 6)] = 1
    maps32 = (rng.random(masks.shape) * 1e-3 + masks * rng.random(masks.shape) * 1.5e-3).astype(np.float32)
    ties = np.round(maps32 * 2e3, 1).astype(np.float16)  # many ties between normal and anomalous pixels
    for maps, tol in ((maps32.astype(np.float16), 1e-9), (ties, 1e-9), (maps32, 1e-3)):
        acc = PixelMetrics()
        for i in range(0, len(masks), 3):
            acc.add(masks[i:i + 3], maps[i:i + 3])
        got = acc.result()
        assert got["pixel_auroc"] == pytest.approx(pixel_auroc(masks, maps), abs=tol)
        assert got["aupro"] == pytest.approx(aupro(masks, maps), abs=tol)
    empty = PixelMetrics()
    empty.add(np.zeros((2, 4, 4)), np.ones((2, 4, 4)))
    assert empty.result() == {}


def _brick_maps() -> tuple[np.ndarray, np.ndarray]:
    """Masks of synthetic defects on crops of scikit-image's brick, and a plausible error map:
    the defect's change plus the texture itself (edges a model reconstructs badly), scaled to
    the small values reconstruction errors have."""
    from aedetect.anomaly.selection.defects import defect_test_set
    from aedetect.data.sources import texture_crops

    test = defect_test_set("brick", 64, 24, rows=(0.75, 1.0), seed=1)
    clean = texture_crops("brick", 64, 24, rows=(0.75, 1.0)).numpy()[:, 0].astype(np.float32) / 255
    changed = np.abs(test.images.numpy()[:, 0].astype(np.float32) / 255 - clean)
    maps = (0.02 * changed + 0.01 * clean).astype(np.float32)
    return test.masks.numpy()[:, 0], maps


@pytest.mark.parametrize("exact_pixels", [None, 0], ids=["exact", "binned"])
def test_streamed_pixel_metrics_keep_the_ranking_of_a_map_on_a_large_offset(exact_pixels: int | None) -> None:
    """A brick map + 100 (what a user's ``mix`` weights can give) against scikit-learn's exact
    figure: the old float16-precision bins of the raw values tied most of it (AUROC 0.66)."""
    from sklearn.metrics import roc_auc_score

    from aedetect.anomaly.evaluate.metrics import PixelMetrics

    masks, maps = _brick_maps()
    shifted = (maps + np.float32(100)).astype(np.float32)
    acc = PixelMetrics(exact_pixels=exact_pixels)
    for i in range(0, len(masks), 7):
        acc.add(masks[i:i + 7], shifted[i:i + 7])
    got = acc.result()
    exact = roc_auc_score((masks > 0).ravel(), shifted.astype(np.float64).ravel())
    assert exact > 0.9  # the map does rank the defects (before the offset too)
    assert abs(roc_auc_score((masks > 0).ravel(), maps.ravel()) - exact) < 0.01
    tol = 1e-12 if exact_pixels is None else 1e-3
    assert got["pixel_auroc"] == pytest.approx(exact, abs=tol)
    assert got["aupro"] == pytest.approx(aupro(masks, shifted), abs=tol if exact_pixels is None else 5e-3)


def test_pixel_sums_of_shards_merge_to_one_accumulator(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Shards binned from the same fixed origin (the model's pixel threshold) add up to exactly
    one accumulator's result, whether a shard stayed exact or went to bins, and through .npz."""
    import numpy as np

    from aedetect.anomaly.evaluate.metrics import PixelMetrics

    rng = np.random.default_rng(0)
    masks = np.zeros((12, 24, 24), bool)
    masks[:6, 5:12, 5:12] = True
    maps = 100.0 + rng.random((12, 24, 24)).astype(np.float32) + 0.6 * masks
    whole = PixelMetrics(exact_pixels=3000, origin=100.4)
    whole.add(masks, maps)
    parts = []
    for idx, limit in (([0, 2, 4, 6, 8, 10], 3000), ([1, 3, 5, 7, 9, 11], 10**6)):  # binned, and exact
        pm = PixelMetrics(exact_pixels=limit, origin=100.4)
        pm.add(masks[idx], maps[idx])
        pm.save(tmp_path / f"{len(parts)}.npz")
        parts.append(PixelMetrics.load(tmp_path / f"{len(parts)}.npz"))
    assert parts[0].origin == 100.4 and parts[1].origin is None
    merged = parts[1].merge(parts[0])
    assert merged.result() == whole.result()
    exact = PixelMetrics()
    exact.add(masks, maps)
    assert abs(merged.result()["pixel_auroc"] - exact.result()["pixel_auroc"]) < 1e-3
    with pytest.raises(ValueError, match="origin"):
        PixelMetrics(exact_pixels=10, origin=0.0).merge(parts[0])
