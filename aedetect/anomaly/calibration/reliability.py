"""How far a calibrated flag can be trusted: the false-positive rate it will have on new
normal images, as an interval from the number of calibration images (no PyTorch needed, so
``aedetect info`` can say it without loading a model)."""

from __future__ import annotations

from typing import Any

# aedetect.anomaly.calibration.overlap warns (and the line below says so) when at least this share of the
# calibration images share most of their pixels with training images.
OVERLAP_WARN = 0.2


def fpr_interval(n: int, above: int, confidence: float = 0.9) -> tuple[float, float]:
    """Where the false-positive rate on *new* normal images lies, with ``confidence``, for a
    threshold with ``above`` of ``n`` normal calibration scores over it.

    The threshold is an order statistic of the calibration scores, so the share of the normal
    population above it is Beta(above + 1, n - above) distributed, whatever the score's
    distribution. With 82 images the highest score's rate lies between 0.06 % and 3.6 %: such a
    set cannot promise 1 % by an order statistic, which is why aedetect.anomaly.calibration.threshold then
    extrapolates the tail instead (and records that fit's interval).
    """
    from scipy.stats import beta

    if n < 1 or above >= n:
        return (0.0, 1.0)
    tail = (1 - confidence) / 2
    return (float(beta.ppf(tail, above + 1, n - above)), float(beta.ppf(1 - tail, above + 1, n - above)))


def reliability_line(calibration: dict[str, Any]) -> str | None:
    """One line on how far the flag's false-positive rate can be trusted, or None (old files)."""
    iv = calibration.get("fpr_interval_90")
    if not iv:
        return None
    n = calibration.get("calib_images", "?")
    tail_fit = calibration.get("threshold_estimate") == "exponential-tail bound"
    fit = ", exponential fit of their scores' tail" if tail_fit else ""
    line = (f"false-positive rate on new normal images: {100 * iv[0]:.2g}-{100 * iv[1]:.2g} % (90 % interval "
            f"from {n} calibration images{fit}; target {100 * calibration.get('target_fpr', 0):.2g} %)")
    ov = calibration.get("overlap_with_training") or {}
    if ov.get("of") and ov["images"] / ov["of"] >= OVERLAP_WARN:
        line += (f", but {ov['images']} of {ov['of']} calibration images share most of their pixels with training "
                 "images, so expect far more: recalibrate on separate images (aedetect calibrate MODEL DIR --rule fpr --out NEW)")
    return line
