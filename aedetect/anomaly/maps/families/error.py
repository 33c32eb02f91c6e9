"""The reconstruction-error maps, ``mse``, ``l1``, ``ssim`` and ``mix``: how far each pixel of
the reconstruction is from the input. They keep no state, and the ONNX graph computes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aedetect.anomaly.maps.family import BatchPass, MapFamily, MapState, smooth

if TYPE_CHECKING:
    from torch import Tensor

    from aedetect.anomaly.settings import AnomalySettings


def raw_error_map(x: Tensor, y: Tensor, s: AnomalySettings) -> Tensor:
    """Per-pixel error (N, 1, H, W) between input ``x`` and reconstruction ``y``, both in [0, 1],
    before smoothing; ``mix`` weighs the others by ``s.mix``."""
    from aedetect.core.model.ssim import ssim_map

    def one(kind: str) -> Tensor:
        if kind == "mse":
            return ((x - y) ** 2).mean(1, keepdim=True)
        if kind == "l1":
            return (x - y).abs().mean(1, keepdim=True)
        return (1 - ssim_map(x, y, data_range=1.0, window=s.ssim_window)).mean(1, keepdim=True)

    if s.map != "mix":
        return one(s.map)
    return sum(float(w) * one(k) for k, w in s.mix.items() if w)  # type: ignore[return-value]


def error_map(x: Tensor, y: Tensor, s: AnomalySettings) -> Tensor:
    """:func:`raw_error_map`, smoothed by ``s.smooth_sigma`` (what the selection ranks)."""
    return smooth(raw_error_map(x, y, s), s.smooth_sigma)


class ErrorMaps(MapFamily):
    """``mse``, ``l1``, ``ssim``, ``mix``: the input against its reconstruction, in [0, 1]."""

    names = ("mse", "l1", "ssim", "mix")

    def raw_map(self, p: BatchPass, s: AnomalySettings, state: MapState) -> Tensor:
        return raw_error_map(p.x_unit, p.y_unit, s)

    def label(self, s: AnomalySettings) -> str:
        return s.map if s.map != "mix" else "mix " + ",".join(f"{k}={w}" for k, w in s.mix.items())


ERROR_MAPS = ErrorMaps()
