"""What a map family is: one kind of per-pixel anomaly map, and everything aedetect does with it.

A family (:class:`MapFamily`) owns its map's fitted state from end to end: which calibration-
record keys hold it, how calibration builds it from the training images, how a model file's
record decodes back into it and is checked on loading, how it maps one batch of the model's
pass, and what the ONNX graph does with it (or why it cannot). Scoring, calibration, the
model-file checks and the export find the family by the settings' ``map`` name
(aedetect.anomaly.maps.registry) and ask it; none of them compares the name. The built-in
families are in aedetect.anomaly.maps.families; a new one is a subclass registered with
:func:`aedetect.anomaly.maps.registry.register` (docs/architecture.md shows one).

Torch is imported inside the methods, never here: the registry answers when a config is
validated (``aedetect info``, a usage error), which must not cost ``import torch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from aedetect.anomaly.settings import AnomalySettings
    from aedetect.core.config import Config
    from aedetect.data.imageset import ImageSet


@dataclass(frozen=True)
class MapState:
    """A family's fitted state, decoded and on the scoring device; None where a family has none.

    ``bank``: training feature vectors (N, D); ``segmenter``: a network trained at calibration;
    ``backbone``: the ImageNet extractor, which the ``pretrained`` latent vector uses too (so it
    travels here whichever family needs it: :func:`aedetect.anomaly.maps.registry.uses_backbone`).
    These are :func:`~aedetect.anomaly.maps.run.run_model`'s ``bank``, ``segmenter`` and ``backbone``.
    """

    bank: Tensor | None = None
    segmenter: nn.Module | None = None
    backbone: nn.Module | None = None


@dataclass(frozen=True)
class BatchPass:
    """One batch through the autoencoder, as a family's map reads it: input and reconstruction
    in the model's scaling (``x``, ``y``) and in [0, 1] (``x_unit``, ``y_unit``), and the
    encoder's per-level features (``skips``)."""

    x: Tensor
    y: Tensor
    x_unit: Tensor
    y_unit: Tensor
    skips: list[Tensor]


@dataclass(frozen=True)
class BatchMap:
    """A family's map of one batch, (N, 1, H, W) and smoothed; ``features``: (scale, extractor
    output) where the map ran the ImageNet extractor, for the latent vector to reuse."""

    map: Tensor
    features: tuple[int, Tensor] | None = None


class RecordCheck(Protocol):
    """The checks aedetect.anomaly.calibration.calfields lends a family for its record keys on
    loading; each failure is one ModelFileError line naming the file and the field."""

    def bank(self, field: str) -> int:
        """A float16 bank ``{"shape": [N, D], "float16_base64": ...}`` whose bytes fit its shape; returns N."""

    def network(self, field: str, decode: Callable[[dict[str, Any], str], Any],
                bounds: tuple[tuple[str, int], ...] = ()) -> None:
        """A stored network: whole-number sizes ``bounds`` ((key, most), each at least 1), its
        base64 text, then ``decode(record, "cpu")`` once."""

    def bad(self, field: str, what: str) -> Exception:
        """The error to raise for ``field`` (``calibration.FIELD WHAT (file damaged or edited)``)."""


class MapFamily:
    """One kind of anomaly map. The defaults describe a map with no fitted state that the ONNX
    graph computes as scoring does; a family overrides what it needs (see the built-ins in
    aedetect.anomaly.maps.families)."""

    names: tuple[str, ...] = ()  # the ``anomaly.map`` values it answers to
    keys: tuple[str, ...] = ()  # the calibration-record keys that hold its state (:meth:`encode`)
    needs_backbone = False  # its map runs the ImageNet extractor (the state's ``backbone``)
    reads_autoencoder = True  # its map reads the autoencoder's pass (plan: a network must train)
    needs_training_images = False  # :meth:`build` reads the training images
    not_exportable: str | None = None  # why an ONNX graph cannot compute it; None: it can

    def check_config(self, cfg: Config, s: AnomalySettings) -> None:
        """Raise ConfigError where this model cannot make the map (a config's validation, before training)."""

    def build(self, model: nn.Module, train: ImageSet, cfg: Config, s: AnomalySettings,
              device: torch.device | str, backbone: nn.Module | None) -> MapState:
        """The state, fitted on ``train`` (the images the model trained on, never the calibration
        ones) with the values the model file will keep, so the threshold is set on the scores
        ``score`` computes. ``backbone``: the decoded extractor where one is used, else None."""
        return MapState(backbone=backbone)

    def encode(self, state: MapState) -> dict[str, Any]:
        """The record entries (JSON-safe) for :attr:`keys`."""
        return {}

    def decode(self, cal: dict[str, Any], device: torch.device | str) -> MapState:
        """The state back from a record's :attr:`keys`, on ``device`` (the backbone aside)."""
        return MapState()

    def check_record(self, check: RecordCheck, s: AnomalySettings, cfg: Config) -> None:
        """Every record field of :attr:`keys`, checked on loading before any image is decoded."""

    def missing(self, state: MapState) -> str | None:
        """What :meth:`map` lacks in ``state`` (a message), or None."""
        return None

    def batch_size(self, s: AnomalySettings, size: tuple[int, int], batch_size: int) -> int:
        """Images a pass may hold at image ``size``: what bounds the pass's memory."""
        return batch_size

    def raw_map(self, p: BatchPass, s: AnomalySettings, state: MapState) -> Tensor | BatchMap:
        """The map of a batch before smoothing (a BatchMap where it has extractor features to share)."""
        raise NotImplementedError(f"map family {self.names}: no map")

    def map(self, p: BatchPass, s: AnomalySettings, state: MapState) -> BatchMap:
        """The map of one batch, smoothed by ``smooth_sigma``: what scoring computes and the
        ONNX graph traces."""
        m = self.raw_map(p, s, state)
        if isinstance(m, BatchMap):
            return BatchMap(smooth(m.map, s.smooth_sigma), m.features)
        return BatchMap(smooth(m, s.smooth_sigma))

    def export_state(self, cal: dict[str, Any]) -> MapState:
        """The state an ONNX graph holds (on the CPU, in eval mode)."""
        return self.decode(cal, "cpu")

    def label(self, s: AnomalySettings) -> str:
        """The map as the ONNX metadata names it."""
        return s.map


def smooth(m: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of (N, 1, H, W) maps (separable, reflect-padded; sigma 0 = unchanged)."""
    if sigma <= 0:
        return m
    import torch
    import torch.nn.functional as F

    r = max(1, math.ceil(3 * sigma))
    r = min(r, m.shape[-1] - 1, m.shape[-2] - 1)
    if r < 1:
        return m
    t = torch.arange(-r, r + 1, dtype=m.dtype, device=m.device)
    g = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))
