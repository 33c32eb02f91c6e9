"""From raw scores to the calibrated flag: the combined image score, the threshold on
held-out normal images (a target false-positive rate, or F1-optimal on labelled ones), the
pixel threshold and the normalised score. The result is the model file's ``calibration``.

An image is flagged when ``score > threshold``; the normalised score maps the threshold to
0.5 and the median normal calibration image to 0.1, so every model reads the same.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import Any

import numpy as np
from torch import Tensor

from aedetect.anomaly.maps.latent import decode_bank, encode_bank, knn_distance
from aedetect.anomaly.maps.run import RawScores
from aedetect.anomaly.calibration.reliability import fpr_interval
from aedetect.anomaly.settings import AnomalySettings
from aedetect.errors import ConfigError

log = logging.getLogger("aedetect")

CALIBRATION_VERSION = 1
# How an ``fpr`` threshold was estimated (``calibration.threshold_estimate``).
TAIL_RULES = ("order statistic", "exponential-tail bound")


def combine_scores(raw: RawScores, calibration: dict[str, Any], s: AnomalySettings,
                   exclude_self: bool = False, bank: Tensor | None = None) -> Tensor:
    """Final image score: the reconstruction score, plus the scaled latent kNN part if enabled.

    ``bank``: the decoded ``latent_bank`` of ``calibration`` when the caller keeps it decoded
    (scoring batch by batch); ``exclude_self``: the images scored are the bank itself.
    """
    if s.latent != "knn":
        return raw.recon_scores
    if bank is None:
        bank = decode_bank(calibration["latent_bank"])
    lat = knn_distance(raw.codes, bank, s.latent_k, exclude_self=exclude_self)  # type: ignore[arg-type]
    return (s.recon_weight * raw.recon_scores / calibration["recon_scale"]
            + s.latent_weight * lat / calibration["latent_scale"])


def normalise(scores: Tensor | np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    """Logistic map with threshold -> 0.5 and the median normal calibration score -> 0.1."""
    s = np.asarray(scores, dtype=np.float64)
    z = (s - calibration["threshold"]) / calibration["spread"]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def order_index(n: int, fpr: float) -> int:
    """The 1-based rank of the order statistic that is the ``fpr`` threshold of n normal scores:
    ceil((1 - fpr) x (n + 1)), the conformal rank, whose false-positive rate on new normal
    images is at most ``fpr`` on average (the rank with at most fpr x n scores above it gave
    1.5 % at 200 images and a 1 % target); above n where n scores cannot resolve ``fpr``."""
    return int(math.ceil((1 - fpr) * (n + 1) - 1e-9))


def resolves(n: int, fpr: float) -> bool:
    """Whether n normal calibration scores resolve a target rate (n >= 1 / fpr - 1: 99 for 1 %)."""
    return order_index(n, fpr) <= n


def threshold_at_fpr(normal_scores: np.ndarray, fpr: float) -> float:
    """The conformal order statistic of the normal scores (:func:`order_index`), the highest
    score where there are too few to resolve ``fpr`` (flag: score > t)."""
    s = np.sort(np.asarray(normal_scores, dtype=np.float64))
    return float(s[min(order_index(s.size, fpr), s.size) - 1])


def fpr_threshold(normal_scores: np.ndarray, fpr: float) -> tuple[float, str]:
    """The threshold for a target false-positive rate and how it was set: the order statistic
    where the calibration set resolves the rate, else the exponential-tail prediction bound
    (aedetect.anomaly.calibration.tail), which can go past the highest calibration score; the order
    statistic too where the tail cannot be fitted (fewer than 2 distinct scores above the median)."""
    from aedetect.anomaly.calibration.tail import exponential_threshold

    s = np.asarray(normal_scores, dtype=np.float64)
    if resolves(s.size, fpr):
        return threshold_at_fpr(s, fpr), TAIL_RULES[0]
    bound = exponential_threshold(s, fpr)
    return (threshold_at_fpr(s, fpr), TAIL_RULES[0]) if bound is None else (bound, TAIL_RULES[1])


def set_fpr_threshold(calibration: dict[str, Any], normal_scores: np.ndarray, fpr: float,
                      who: str = "calibration") -> None:
    """:func:`set_threshold` for a target rate (:func:`fpr_threshold`), with the tail fit's
    interval of the rate where the bound was used, and one warning line (naming ``who``)
    where the calibration set cannot resolve the rate."""
    from aedetect.anomaly.calibration.tail import exponential_fpr_interval

    t, how = fpr_threshold(normal_scores, fpr)
    set_threshold(calibration, t, "fpr", normal_scores)
    calibration["threshold_estimate"] = how
    if how == TAIL_RULES[1]:
        calibration["fpr_interval_90"] = list(exponential_fpr_interval(normal_scores, t))
    n = int(np.asarray(normal_scores).size)
    if not resolves(n, fpr):
        warn_unresolved(who, calibration, n, fpr)


def set_threshold(calibration: dict[str, Any], threshold: float, rule: str, normal_scores: np.ndarray) -> None:
    """Store a threshold and the spread of the normalised score (median normal -> 0.1)."""
    med = float(np.median(normal_scores))
    spread = (threshold - med) / math.log(9.0)
    if not spread > 0:
        spread = max(abs(threshold), 1e-12) * 0.1
    above = int((np.asarray(normal_scores) > threshold).sum())
    calibration.update(threshold=float(threshold), threshold_rule=rule, spread=float(spread),
                       normal_median=med, calib_fpr=above / max(len(normal_scores), 1),
                       fpr_interval_90=list(fpr_interval(len(normal_scores), above)))


def calibrate_scores(raw: RawScores, s: AnomalySettings, n_images: int,
                     latent_bank: Tensor | None = None, thresholds: bool = True) -> dict[str, Any]:
    """Thresholds and scales from normal held-out images (see :meth:`AnomalyHead.calibrate`).

    ``latent_bank``: the training images' latent vectors (``latent_bank = train``); without
    it the calibration images' own vectors are the bank, each scored without itself.
    ``thresholds = False``: the scales only, for a tiled model, whose thresholds are set on
    whole images next (aedetect.anomaly.calibration.tiled): a tile's threshold, and its warning
    about too few images, would mean nothing to the user.
    """
    cal: dict[str, Any] = {"version": CALIBRATION_VERSION, "settings": asdict(s), "calib_images": n_images,
                           "target_fpr": s.target_fpr, "pixel_fpr": s.pixel_fpr}
    own_bank = latent_bank is None
    bank = None
    if s.latent == "knn":
        if raw.codes is None or (own_bank and raw.codes.shape[0] < 2):
            raise ConfigError("anomaly.latent: 'knn' needs at least 2 calibration images")
        cal["latent_bank"] = encode_bank(raw.codes if latent_bank is None else latent_bank)
        bank = decode_bank(cal["latent_bank"])  # the float16 values scoring will see
        cal["recon_scale"] = max(float(raw.recon_scores.median()), 1e-12)
        lat = knn_distance(raw.codes, bank, s.latent_k, exclude_self=own_bank)
        cal["latent_scale"] = max(float(lat.median()), 1e-12)
    if thresholds:
        scores = combine_scores(raw, cal, s, exclude_self=own_bank, bank=bank).numpy()
        set_fpr_threshold(cal, scores, s.target_fpr)
        set_pixel_thresholds(cal, raw.maps.flatten().numpy(), s)
    return cal


def set_pixel_thresholds(cal: dict[str, Any], pix: np.ndarray, s: AnomalySettings) -> None:
    """The pixel threshold (the ``1 - pixel_fpr`` quantile of normal map values, a seeded sample
    of 2,000,000 where there are more) and the heat maps' colour scale (twice the 99.9 % one)."""
    if pix.size > 2_000_000:
        pix = np.random.default_rng(0).choice(pix, 2_000_000, replace=False)
    cal["pixel_threshold"] = float(np.quantile(pix, 1 - s.pixel_fpr))
    cal["map_display_max"] = float(np.quantile(pix, 0.999)) * 2


def warn_unresolved(who: str, cal: dict[str, Any], n_images: int, fpr: float) -> None:
    """One warning line: the calibration set is too small for the target, how the threshold was
    set instead and what rate it promises."""
    lo, hi = cal["fpr_interval_90"]
    how = ("an exponential fit of the normal scores' tail, past the highest one"
           if cal.get("threshold_estimate") == TAIL_RULES[1] else "the highest normal score")
    log.warning("%s: %d normal images cannot resolve a %.3g false-positive rate; the threshold is %s, and the rate "
                "on new normal images is %.2g-%.2g %% (90 %% interval)", who, n_images, fpr, how,
                100 * lo, 100 * hi)


def f1_threshold(calibration: dict[str, Any], labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Replace the FPR threshold by the F1-optimal one on labelled validation scores."""
    from aedetect.anomaly.evaluate.metrics import best_f1, both_classes

    labels = np.asarray(labels)
    if not both_classes(labels):
        raise ConfigError("F1 calibration needs labelled validation images of both classes")
    f1, t = best_f1(labels, scores)
    cal = {k: v for k, v in calibration.items() if k != "threshold_estimate"}  # that was the fpr rule's
    set_threshold(cal, t, "f1", np.asarray(scores)[labels == 0])
    cal["validation_best_f1"] = f1
    return cal
