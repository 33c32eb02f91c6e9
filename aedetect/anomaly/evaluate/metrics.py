"""How good an anomaly detector is, the way the field reports it.

Image level: ROC AUC and average precision (scikit-learn), F1 at a given threshold and the
best F1 over all thresholds. Pixel level: ROC AUC over every pixel and AUPRO, the area under
the per-region-overlap curve up to a false-positive rate of 0.3, divided by 0.3 (Bergmann et
al., MVTec AD, IJCV 2021), so a perfect map scores 1.0 and a random one about 0.15.

Every score points the same way: higher = more anomalous; label 1 = anomalous.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage


def _as_arrays(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    return y, s


def both_classes(labels: Any) -> bool:
    """ROC/PR metrics need at least one normal and one anomalous example."""
    y = np.asarray(labels).ravel()
    return bool((y == 0).any() and (y == 1).any())


def image_auroc(labels: Any, scores: Any) -> float:
    from sklearn.metrics import roc_auc_score

    y, s = _as_arrays(labels, scores)
    return float(roc_auc_score(y, s))


def image_ap(labels: Any, scores: Any) -> float:
    from sklearn.metrics import average_precision_score

    y, s = _as_arrays(labels, scores)
    return float(average_precision_score(y, s))


def f1_at_threshold(labels: Any, scores: Any, threshold: float) -> float:
    """F1 of the rule ``score > threshold`` (the flag rule of the anomaly head)."""
    from sklearn.metrics import f1_score

    y, s = _as_arrays(labels, scores)
    return float(f1_score(y, (s > threshold).astype(np.int64), zero_division=0))


def best_f1(labels: Any, scores: Any) -> tuple[float, float]:
    """The highest F1 over all thresholds and a threshold reaching it (flag rule ``score > t``)."""
    from sklearn.metrics import precision_recall_curve

    y, s = _as_arrays(labels, scores)
    prec, rec, thr = precision_recall_curve(y, s)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)[:-1]
    i = int(np.argmax(f1))
    # precision_recall_curve flags score >= thr; the next-lower score gives the same set with '>'.
    below = s[s < thr[i]]
    t = float(below.max()) if below.size else float(thr[i]) - 1e-12
    return float(f1[i]), t


def pixel_auroc(masks: Any, maps: Any) -> float:
    """ROC AUC over every pixel of every image (mask 1 = anomalous pixel)."""
    m = (np.asarray(masks) > 0).astype(np.int64)
    return image_auroc(m.ravel(), np.asarray(maps, dtype=np.float64).ravel())


def _region_weights(m: np.ndarray, weights: np.ndarray) -> int:
    """Fill ``weights`` (like ``m``, (N, H, W)) with 1 / region size on each 8-connected region
    of each mask; return the number of regions."""
    n_regions = 0
    for i in range(m.shape[0]):
        lab, n = ndimage.label(m[i], structure=np.ones((3, 3), dtype=bool))
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())
        w = np.zeros(n + 1)
        w[1:] = 1.0 / sizes[1:]
        weights[i] = w[lab]
        n_regions += n
    return n_regions


def pro_curve(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """False-positive rate and mean per-region overlap at every distinct map value.

    Regions are the 8-connected components of each ground-truth mask. Each anomalous pixel
    weighs 1 / (its region's size * number of regions), so a region's overlap counts the
    same however large it is; the curve is exact (computed by one sort, no threshold grid).
    """
    m = np.asarray(masks) > 0
    a = np.asarray(maps, dtype=np.float64)
    if m.shape != a.shape:
        raise ValueError(f"masks {m.shape} and maps {a.shape} differ in shape")
    m = m.reshape(-1, *m.shape[-2:])
    a = a.reshape(-1, *a.shape[-2:])
    weights = np.zeros(m.shape, dtype=np.float64)
    n_regions = _region_weights(m, weights)
    n_normal = int((~m).sum())
    if n_regions == 0 or n_normal == 0:
        raise ValueError("AUPRO needs at least one anomalous region and one normal pixel")
    flat_scores = a.ravel()
    order = np.argsort(-flat_scores, kind="stable")
    s_sorted = flat_scores[order]
    pro = np.cumsum(weights.ravel()[order]) / n_regions
    fpr = np.cumsum((~m).ravel()[order]) / n_normal
    # Keep the last index of each run of equal scores: a threshold cannot split ties.
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    return np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]


def aupro(masks: Any, maps: Any, max_fpr: float = 0.3) -> float:
    """Area under the PRO curve for FPR in [0, max_fpr], divided by max_fpr (1.0 = perfect)."""
    fpr, pro = pro_curve(masks, maps)
    return _area_to(fpr, pro, max_fpr)


def _area_to(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> float:
    end = float(np.interp(max_fpr, fpr, pro))
    keep = fpr <= max_fpr
    x = np.r_[fpr[keep], max_fpr]
    y = np.r_[pro[keep], end]
    return float(np.trapezoid(y, x) / max_fpr) if hasattr(np, "trapezoid") else float(np.trapz(y, x) / max_fpr)


def image_metrics(labels: Any, scores: Any, threshold: float) -> dict[str, float]:
    """The image-level table: AUROC, AP, F1 at the calibrated threshold, best F1."""
    y, s = _as_arrays(labels, scores)
    flags = s > threshold
    out: dict[str, float] = {
        "n_images": int(y.size), "n_anomalous": int(y.sum()),
        "f1_at_threshold": f1_at_threshold(y, s, threshold),
        "precision_at_threshold": float((y[flags] == 1).mean()) if flags.any() else 0.0,
        "recall_at_threshold": float(flags[y == 1].mean()) if (y == 1).any() else 0.0,
        "fpr_at_threshold": float(flags[y == 0].mean()) if (y == 0).any() else 0.0,
    }
    if both_classes(y):
        bf1, bt = best_f1(y, s)
        out.update(image_auroc=image_auroc(y, s), image_ap=image_ap(y, s), best_f1=bf1,
                   best_f1_threshold=bt)
    return out


def pixel_metrics(masks: Any, maps: Any) -> dict[str, float]:
    """The pixel-level table: pixel AUROC and AUPRO (needs masks with some anomalous pixels)."""
    m = np.asarray(masks) > 0
    if not m.any() or m.all():
        return {}
    return {"pixel_auroc": pixel_auroc(m, maps), "aupro": aupro(m, maps)}


class PixelMetrics:
    """Pixel AUROC and AUPRO over a stream of (masks, maps) batches, in bounded memory.

    ``add(masks, maps)`` once per batch, ``result()`` at the end: the same record as
    :func:`pixel_metrics` over all batches together.

    Exact while it fits: up to ``exact_pixels`` pixels (default 2**21, about 10 MB for float32
    maps) the values themselves are kept, and ``result()`` is exactly what scikit-learn's
    ``roc_auc_score`` and :func:`aupro` give, ties included, whatever offset or scale the maps
    have. Beyond that, the kept values and every later batch go into 2**19 order-preserving
    bins of ``value - origin``, ``origin`` being the smallest value seen so far: the difference
    is cut to float16's 10 mantissa bits (float32's exponent range, so no small difference
    underflows), so values closer than about 1 part in 2,000 *of their distance from the
    origin* tie. Binning the raw values instead, as before, tied every value of a map that sits
    on a large constant offset (a brick map + 100 ranked at pixel AUROC 0.66 instead of 0.97).
    Per bin three sums are kept: normal pixels, anomalous pixels and the AUPRO region weight
    (1 / region size, regions as in :func:`pro_curve`); 12.6 MB however many images are added.
    """

    SHIFT = 13  # float32 mantissa bits dropped (23 - 13 = 10 kept, as float16)
    BINS = 1 << (32 - SHIFT)
    EXACT_PIXELS = 1 << 21

    def __init__(self, exact_pixels: int | None = None, origin: float | None = None) -> None:
        """``origin``: bin relative to this value (e.g. the model's pixel threshold) instead of
        the smallest value seen, so that the sums of runs over different images (the shards of
        ``aedetect score --shard``) are binned alike and add up exactly."""
        self.exact_pixels = self.EXACT_PIXELS if exact_pixels is None else exact_pixels
        self.fixed_origin = origin
        self.n_regions = 0
        # Exact mode: (normal values, anomalous values, anomalous region weights) per batch.
        self._kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._n_kept = 0
        self.origin: float | None = None  # set when binning starts
        self.normal = np.zeros(0, np.int64)
        self.anomalous = np.zeros(0, np.int64)
        self.region_weight = np.zeros(0, np.float64)

    @classmethod
    def bins(cls, maps: Any, origin: float = 0.0) -> np.ndarray:
        """Order-preserving bin index of each ``value - origin``: a < b implies bin(a) <= bin(b)."""
        a = (np.asarray(maps, dtype=np.float64) - origin).astype(np.float32) + np.float32(0.0)  # -0.0 -> +0.0
        u = a.view(np.uint32)
        key = np.where(u & np.uint32(0x80000000), ~u, u | np.uint32(0x80000000))
        return (key >> np.uint32(cls.SHIFT)).astype(np.intp)

    def add(self, masks: Any, maps: Any) -> None:
        m = np.asarray(masks) > 0
        a = np.asarray(maps)
        if m.shape != a.shape:
            raise ValueError(f"masks {m.shape} and maps {a.shape} differ in shape")
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
        m = m.reshape(-1, *m.shape[-2:])
        a = a.reshape(m.shape)
        weights = np.zeros(m.shape, dtype=np.float64)
        self.n_regions += _region_weights(m, weights)
        self._keep((a[~m], a[m], weights[m]))

    def _start_bins(self) -> None:
        """Too many pixels to keep: bin everything kept so far, relative to its smallest value."""
        values = [v for normal, anom, _ in self._kept for v in (normal, anom) if v.size]
        if self.fixed_origin is not None:
            self.origin = float(self.fixed_origin)
        else:
            self.origin = float(min(v.min() for v in values)) if values else 0.0
        self.normal = np.zeros(self.BINS, np.int64)
        self.anomalous = np.zeros(self.BINS, np.int64)
        self.region_weight = np.zeros(self.BINS, np.float64)
        for part in self._kept:
            self._accumulate(*part)
        self._kept, self._n_kept = [], 0

    def _accumulate(self, normal: np.ndarray, anom: np.ndarray, weights: np.ndarray) -> None:
        assert self.origin is not None
        self.normal += np.bincount(self.bins(normal, self.origin), minlength=self.BINS)
        key = self.bins(anom, self.origin)
        self.anomalous += np.bincount(key, minlength=self.BINS)
        self.region_weight += np.bincount(key, weights=weights, minlength=self.BINS)

    def _exact_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per distinct kept value, ascending: normal count, anomalous count, region weight."""
        normal = np.concatenate([p[0].ravel() for p in self._kept]).astype(np.float64)
        anom = np.concatenate([p[1].ravel() for p in self._kept]).astype(np.float64)
        weights = np.concatenate([p[2].ravel() for p in self._kept])
        values, inverse = np.unique(np.r_[normal, anom], return_inverse=True)
        inverse = inverse.ravel()
        n = len(values)
        return (np.bincount(inverse[:normal.size], minlength=n), np.bincount(inverse[normal.size:], minlength=n),
                np.bincount(inverse[normal.size:], weights=weights, minlength=n))

    def merge(self, other: "PixelMetrics") -> "PixelMetrics":
        """Add another accumulator's pixels (a shard's): the result is that of one accumulator
        given both streams of batches. Binned sums only add up when both were binned from the
        same fixed origin (give ``origin`` to both)."""
        if other.origin is None:
            for part in other._kept:
                self._keep(part)
        else:
            if self.origin is None:
                if self.fixed_origin is None or other.fixed_origin != self.fixed_origin:
                    raise ValueError("pixel sums binned from another origin cannot be merged")
                self._start_bins()
            elif other.origin != self.origin:
                raise ValueError(f"pixel sums binned from origins {self.origin} and {other.origin} cannot be merged")
            self.normal += other.normal
            self.anomalous += other.anomalous
            self.region_weight += other.region_weight
        self.n_regions += other.n_regions
        return self

    def _keep(self, part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        if self.origin is None:
            self._kept.append(part)
            self._n_kept += part[0].size + part[1].size
            if self._n_kept > self.exact_pixels:
                self._start_bins()
        else:
            self._accumulate(*part)

    def save(self, file: Any) -> None:
        """The state as a compressed .npz: the kept values (exact mode) or the bin sums."""
        normal, anom, weights = (np.concatenate([p[k].ravel() for p in self._kept]) if self._kept else np.zeros(0)
                                 for k in range(3))
        np.savez_compressed(file, n_regions=np.int64(self.n_regions), shift=np.int64(self.SHIFT),
                            exact_pixels=np.int64(self.exact_pixels),
                            fixed_origin=np.float64(np.nan if self.fixed_origin is None else self.fixed_origin),
                            origin=np.float64(np.nan if self.origin is None else self.origin),
                            kept_normal=normal, kept_anomalous=anom, kept_weights=weights,
                            normal=self.normal, anomalous=self.anomalous, region_weight=self.region_weight)

    @classmethod
    def load(cls, file: Any) -> "PixelMetrics":
        with np.load(file) as z:
            if int(z["shift"]) != cls.SHIFT:
                raise ValueError(f"{file}: pixel sums binned differently (shift {int(z['shift'])})")
            fixed = float(z["fixed_origin"])
            pm = cls(int(z["exact_pixels"]), None if np.isnan(fixed) else fixed)
            pm.n_regions = int(z["n_regions"])
            origin = float(z["origin"])
            if np.isnan(origin):
                if z["kept_normal"].size or z["kept_anomalous"].size:
                    pm._kept = [(z["kept_normal"], z["kept_anomalous"], z["kept_weights"])]
                    pm._n_kept = int(z["kept_normal"].size + z["kept_anomalous"].size)
            else:
                pm.origin = origin
                pm.normal, pm.anomalous = z["normal"].astype(np.int64), z["anomalous"].astype(np.int64)
                pm.region_weight = z["region_weight"].astype(np.float64)
        return pm

    def result(self, max_fpr: float = 0.3) -> dict[str, float]:
        """``pixel_auroc`` and ``aupro`` ({} without both normal and anomalous pixels)."""
        if self.origin is None:
            if not self._kept:
                return {}
            counts, anomalous, region_weight = self._exact_counts()
        else:
            counts, anomalous, region_weight = self.normal, self.anomalous, self.region_weight
        n_normal, n_anom = int(counts.sum()), int(anomalous.sum())
        if n_normal == 0 or n_anom == 0:
            return {}
        normal = counts.astype(np.float64)
        below = np.cumsum(normal) - normal  # normal pixels at lower values
        # P(anomalous pixel > normal pixel) + 1/2 P(tie): what roc_auc_score gives with ties.
        auroc = float(np.sum(anomalous * (below + 0.5 * normal)) / (float(n_normal) * float(n_anom)))
        used = np.flatnonzero(counts + anomalous)[::-1]  # distinct values, high to low
        fpr = np.r_[0.0, np.cumsum(normal[used]) / n_normal]
        pro = np.r_[0.0, np.cumsum(region_weight[used]) / self.n_regions]
        return {"pixel_auroc": auroc, "aupro": _area_to(fpr, pro, max_fpr)}
