"""Metrics per defect kind (MVTec AD's ``test/<kind>`` folders): which defects a model finds.

Each anomalous kind is measured against all the normal images, as one would score a test set
of normal images and that defect alone: image AUROC of the kind's images against the normals,
pixel AUROC over the pixels of the kind's images and of the normal images, and how many of the
kind's images were flagged. The normal kind's row has its count flagged (false positives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aedetect.anomaly.evaluate.metrics import PixelMetrics, image_auroc


class KindPixels:
    """Per-kind :class:`PixelMetrics` over a stream: a kind's images go to its own
    accumulator, normal images to every kind's (so each kind's figure is "kind vs normals")."""

    def __init__(self, anomalous_kinds: list[str], origin: float | None = None) -> None:
        """``origin``: see :class:`PixelMetrics` (shards of one run bin alike, so they merge)."""
        self.acc = {k: PixelMetrics(origin=origin) for k in anomalous_kinds}

    def add(self, masks: np.ndarray, maps: np.ndarray, labels: np.ndarray, kinds: list[str]) -> None:
        normal = labels == 0
        if normal.any():
            for acc in self.acc.values():
                acc.add(masks[normal], maps[normal])
        for k, acc in self.acc.items():
            sel = (~normal) & np.array([x == k for x in kinds])
            if sel.any():
                acc.add(masks[sel], maps[sel])

    def result(self, kind: str) -> float | None:
        acc = self.acc.get(kind)
        return acc.result().get("pixel_auroc") if acc is not None else None


@dataclass
class KindRow:
    kind: str
    label: int
    n_images: int
    n_flagged: int
    image_auroc: float | None
    pixel_auroc: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def kind_rows(scores: np.ndarray, labels: np.ndarray, flags: np.ndarray, kinds: list[str],
              pixels: KindPixels | None = None) -> list[KindRow]:
    """One row per kind: normal kinds first, then anomalous kinds by name."""
    karr = np.array(kinds, dtype=object)
    normal = labels == 0
    rows: list[KindRow] = []
    names = sorted(set(kinds), key=lambda k: (int(labels[karr == k][0]), k))
    for k in names:
        sel = karr == k
        lab = int(labels[sel][0])
        auroc = None
        if lab == 1 and normal.any():
            both = sel | normal
            auroc = image_auroc(labels[both], scores[both])
        rows.append(KindRow(kind=k, label=lab, n_images=int(sel.sum()), n_flagged=int(flags[sel].sum()),
                            image_auroc=auroc, pixel_auroc=pixels.result(k) if pixels and lab == 1 else None))
    return rows
