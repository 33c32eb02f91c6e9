"""A threshold at a false-positive rate that the calibration set is too small to resolve.

Why: with n normal calibration images, an order statistic cannot go past the highest score,
whose false-positive rate on new normal images is 1 / (n + 1) on average (5.6 % for 17 images
against a 1 % target). Here the scores above their median are taken as the median plus
exponential excesses (peaks over threshold with a zero shape), and the threshold is the
prediction bound for one new score, so that its false-positive rate is the target on average.
It is used only where the order statistic cannot resolve the target; which rule was used is
recorded. Chosen against the alternatives in docs/decisions/0009.
"""

from __future__ import annotations

import numpy as np

TAIL_DRAWS = 4000  # posterior draws of the fitted distribution for the rate's interval


def _excesses(scores: np.ndarray) -> tuple[float, np.ndarray, int]:
    """(median u, the excesses over u of the scores above it, n): the tail both functions fit."""
    s = np.asarray(scores, dtype=np.float64)
    u = float(np.median(s)) if s.size else 0.0
    return u, s[s > u] - u, s.size


def exponential_threshold(scores: np.ndarray, fpr: float) -> float | None:
    """The exponential-tail prediction bound at ``fpr``, or None where it cannot be fitted
    (fewer than 2 scores above the median, or none distinct).

    The scores above their median u (k of n) are taken as u plus exponential excesses of mean
    b, estimated by their mean; the bound u + b x c, with c = k x ((k / n / fpr)^(1 / k) - 1),
    is exceeded by a new score with probability ``fpr`` exactly on average over the estimate
    (for exponential excesses, P(excess > b_est x c) = (1 + c / k)^(-k))."""
    u, excess, n = _excesses(scores)
    k = excess.size
    if k < 2 or not excess.mean() > 1e-9 * max(1.0, abs(u)):
        return None
    c = k * ((k / n / fpr) ** (1 / k) - 1)
    return float(u + excess.mean() * c)


def exponential_fpr_interval(scores: np.ndarray, threshold: float, confidence: float = 0.9,
                             seed: int = 0) -> tuple[float, float]:
    """Where the false-positive rate of ``threshold`` lies if the excesses over the median are
    exponential: the rate under posterior draws of the share above the median (Beta, Jeffreys
    prior) and of the excesses' mean (inverse gamma, prior 1 / b)."""
    u, excess, n = _excesses(scores)
    k = excess.size
    if k < 2 or not excess.sum() > 0:
        return (0.0, 1.0)
    rng = np.random.default_rng(seed)
    share = rng.beta(k + 0.5, n - k + 0.5, TAIL_DRAWS)
    mean = excess.sum() / rng.gamma(k, 1.0, TAIL_DRAWS)
    rate = share * np.exp(-max(threshold - u, 0.0) / mean)
    tail = (1 - confidence) / 2
    return (float(np.quantile(rate, tail)), float(np.quantile(rate, 1 - tail)))
