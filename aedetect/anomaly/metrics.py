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
    """Pixel AUROC and AUPRO over a stream of (masks, maps) batches, in constant memory.

    ``add(masks, maps)`` once per batch, ``result()`` at the end: the same record as
    :func:`pixel_metrics` over all batches together, without keeping any map. Each map value is
    put in one of 2**19 order-preserving bins (the float32 value with its mantissa cut to 10
    bits, float16's precision, but float32's exponent range so no small error underflows), and
    per bin three sums are kept: normal pixels, anomalous pixels and the AUPRO region weight
    (1 / (region size), regions as in :func:`pro_curve`). Both metrics are then exact for maps
    whose values are float16 numbers; for float32 maps the only change is that values closer
    than about 1 part in 2,000 tie. Memory: three arrays of 2**19 eight-byte numbers (12.6 MB)
    however many images are added, plus the temporaries of one batch.
    """

    SHIFT = 13  # float32 mantissa bits dropped (23 - 13 = 10 kept, as float16)
    BINS = 1 << (32 - SHIFT)

    def __init__(self) -> None:
        self.normal = np.zeros(self.BINS, np.int64)
        self.anomalous = np.zeros(self.BINS, np.int64)
        self.region_weight = np.zeros(self.BINS, np.float64)
        self.n_regions = 0

    @classmethod
    def bins(cls, maps: Any) -> np.ndarray:
        """Order-preserving bin index of each value: a < b implies bin(a) <= bin(b)."""
        a = np.asarray(maps, dtype=np.float32) + np.float32(0.0)  # -0.0 -> +0.0 (they tie)
        u = a.view(np.uint32)
        key = np.where(u & np.uint32(0x80000000), ~u, u | np.uint32(0x80000000))
        return (key >> np.uint32(cls.SHIFT)).astype(np.intp)

    def add(self, masks: Any, maps: Any) -> None:
        m = np.asarray(masks) > 0
        a = np.asarray(maps)
        if m.shape != a.shape:
            raise ValueError(f"masks {m.shape} and maps {a.shape} differ in shape")
        m = m.reshape(-1, *m.shape[-2:])
        key = self.bins(a).reshape(m.shape)
        weights = np.zeros(m.shape, dtype=np.float64)
        self.n_regions += _region_weights(m, weights)
        self.normal += np.bincount(key[~m], minlength=self.BINS)
        self.anomalous += np.bincount(key[m], minlength=self.BINS)
        self.region_weight += np.bincount(key[m], weights=weights[m], minlength=self.BINS)

    def merge(self, other: "PixelMetrics") -> "PixelMetrics":
        """Add another accumulator's sums (a shard's): the result is that of one accumulator
        given both streams of batches."""
        self.normal += other.normal
        self.anomalous += other.anomalous
        self.region_weight += other.region_weight
        self.n_regions += other.n_regions
        return self

    def save(self, path: Any) -> None:
        """The sums as a compressed .npz (a shard's part of the pixel metrics)."""
        np.savez_compressed(path, normal=self.normal, anomalous=self.anomalous,
                            region_weight=self.region_weight, n_regions=np.int64(self.n_regions),
                            shift=np.int64(self.SHIFT))

    @classmethod
    def load(cls, path: Any) -> "PixelMetrics":
        with np.load(path) as z:
            if int(z["shift"]) != cls.SHIFT or z["normal"].shape != (cls.BINS,):
                raise ValueError(f"{path}: pixel sums binned differently (shift {int(z['shift'])})")
            pm = cls()
            pm.normal, pm.anomalous = z["normal"].astype(np.int64), z["anomalous"].astype(np.int64)
            pm.region_weight, pm.n_regions = z["region_weight"].astype(np.float64), int(z["n_regions"])
        return pm

    def result(self, max_fpr: float = 0.3) -> dict[str, float]:
        """``pixel_auroc`` and ``aupro`` ({} without both normal and anomalous pixels)."""
        n_normal, n_anom = int(self.normal.sum()), int(self.anomalous.sum())
        if n_normal == 0 or n_anom == 0:
            return {}
        normal = self.normal.astype(np.float64)
        below = np.cumsum(normal) - normal  # normal pixels in lower bins
        # P(anomalous pixel > normal pixel) + 1/2 P(tie): what roc_auc_score gives with ties.
        auroc = float(np.sum(self.anomalous * (below + 0.5 * normal)) / (float(n_normal) * float(n_anom)))
        used = np.flatnonzero(self.normal + self.anomalous)[::-1]  # distinct values, high to low
        fpr = np.r_[0.0, np.cumsum(normal[used]) / n_normal]
        pro = np.r_[0.0, np.cumsum(self.region_weight[used]) / self.n_regions]
        return {"pixel_auroc": auroc, "aupro": _area_to(fpr, pro, max_fpr)}
