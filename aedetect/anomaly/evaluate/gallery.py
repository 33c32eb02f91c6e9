"""The report's gallery: the highest-scored images, and the highest-scored normal images, of
a stream of any length, with a panel for each, in bounded memory.

Panels are not kept in memory (a panel of a 1024-pixel image is 12 MB): an image that enters
one of the two top-K lists gets its panel written at once, under ``heatmaps/`` if the run
writes it there anyway (flagged images, or all with ``--all-heatmaps``), else under
``gallery/``; a ``gallery/`` panel pushed out of both lists is deleted. On data in random
order an image enters a top-K list about K * ln(N / K) times in N, so the churn is small.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aedetect.anomaly.evaluate.heatmap import write_heatmap


@dataclass
class GalleryItem:
    """One image of the gallery and the panel file it links to (relative to the run folder)."""

    index: int
    path: str
    score: float
    flag: bool
    label: int | None
    kind: str
    panel: str | None


class Gallery:
    """Top ``k`` images by score, and top ``k`` normal (label 0) images by score."""

    def __init__(self, run: Path, k: int = 24) -> None:
        self.run, self.k = run, k
        self._top: list[tuple[float, int]] = []  # min-heaps of (score, index)
        self._normals: list[tuple[float, int]] = []
        self.items: dict[int, GalleryItem] = {}

    def _wants(self, heap: list[tuple[float, int]], key: tuple[float, int]) -> bool:
        return len(heap) < self.k or key > heap[0]

    def _push(self, heap: list[tuple[float, int]], key: tuple[float, int]) -> int | None:
        """Put ``key`` in ``heap``; the index pushed out, if any."""
        if len(heap) < self.k:
            heapq.heappush(heap, key)
            return None
        return heapq.heappushpop(heap, key)[1]

    def offer(self, item: GalleryItem, name: str, in_heatmaps: bool,
              make_panel: Callable[[], np.ndarray] | None) -> None:
        """Consider one scored image. ``name``: its panel's file name (see
        :func:`~aedetect.anomaly.evaluate.heatmap.heatmap_name`); ``in_heatmaps``: the run writes that
        panel under heatmaps/ itself; ``make_panel``: draws it (None: no panels at all)."""
        key = (item.score, item.index)
        in_top = self._wants(self._top, key)
        in_normals = item.label == 0 and self._wants(self._normals, key)
        if not (in_top or in_normals):
            return
        if make_panel is not None:
            item.panel = f"heatmaps/{name}" if in_heatmaps else f"gallery/{name}"
            if not in_heatmaps:
                write_heatmap(self.run / item.panel, make_panel())
        self.items[item.index] = item
        pushed_out = [self._push(h, key) for h, wanted in ((self._top, in_top), (self._normals, in_normals)) if wanted]
        for i in pushed_out:
            if i is not None:
                self._drop_if_unused(i)

    def _drop_if_unused(self, index: int) -> None:
        if any(i == index for _, i in self._top) or any(i == index for _, i in self._normals):
            return
        gone = self.items.pop(index)
        if gone.panel and gone.panel.startswith("gallery/"):
            os.unlink(self.run / gone.panel)

    def top(self) -> list[GalleryItem]:
        """Most anomalous first."""
        return [self.items[i] for _, i in sorted(self._top, reverse=True)]

    def top_normals(self) -> list[GalleryItem]:
        """The normal images with the highest scores, highest first: where a threshold problem shows."""
        return [self.items[i] for _, i in sorted(self._normals, reverse=True)]
