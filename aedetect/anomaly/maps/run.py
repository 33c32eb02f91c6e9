"""Per-pixel anomaly maps and image scores from one pass of the model (:func:`run_model`).

Direction, everywhere in aedetect: a higher map value and a higher score mean more anomalous.
Each kind of map is a family (aedetect.anomaly.maps.family, the built-ins in
aedetect.anomaly.maps.families); this file runs the model and asks the settings' family for
the map of each batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from aedetect.anomaly.maps.family import BatchPass, MapState
from aedetect.anomaly.maps.latent import latent_vectors
from aedetect.anomaly.maps.registry import family_of, uses_backbone
from aedetect.anomaly.settings import AnomalySettings
from aedetect.core.config import Config
from aedetect.data.imageset import float_to_unit, scale_to_float
from aedetect.errors import ConfigError


def image_score(m: Tensor, how: str, topk_percent: float = 1.0) -> Tensor:
    """One score per map: max, mean, or mean of the top ``topk_percent`` % pixels."""
    flat = m.flatten(1)
    if how == "max":
        return flat.max(1).values
    if how == "mean":
        return flat.mean(1)
    k = max(1, round(flat.shape[1] * topk_percent / 100))
    return flat.topk(k, dim=1).values.mean(1)


def shared_features(feats: tuple[int, Tensor] | None, s: AnomalySettings, x: Tensor) -> Tensor | None:
    """The pretrained map's features where the ``pretrained`` latent vector enlarges the images
    alike (images of 128 pixels a side and more: both at 1x), so one extractor pass serves both."""
    if feats is None or s.latent != "knn" or s.latent_source != "pretrained":
        return None
    from aedetect.anomaly.maps.backbone import LATENT_TARGET_SIDE, scale_of

    return feats[1] if scale_of(s.pretrained_scale, tuple(x.shape[-2:]), LATENT_TARGET_SIDE) == feats[0] else None


@dataclass
class RawScores:
    """What one pass of the model gives: reconstructions and maps in [0, 1], scores, codes."""

    inputs: Tensor
    recon: Tensor
    maps: Tensor
    recon_scores: Tensor
    codes: Tensor | None


@torch.no_grad()
def run_model(model: nn.Module, images: Tensor, max_value: float, cfg: Config, s: AnomalySettings,
              device: torch.device | str = "cpu", batch_size: int = 64, keep_images: bool = True,
              on_batch: Any = None, bank: Tensor | None = None, segmenter: nn.Module | None = None,
              backbone: nn.Module | None = None) -> RawScores:
    """Score integer images (N, C, H, W) in batches; ``on_batch(n)`` reports progress;
    ``bank``, ``segmenter``, ``backbone``: the fitted state of the settings' map family (and
    the extractor the ``pretrained`` latent vector needs), from the calibration record
    (aedetect.anomaly.maps.registry.decode_state)."""
    family = family_of(s)
    state = MapState(bank=bank, segmenter=segmenter, backbone=backbone)
    lacking = family.missing(state)
    if lacking:
        raise ConfigError(lacking)
    if uses_backbone(s) and backbone is None:
        raise ConfigError("anomaly.map / latent_source: 'pretrained' needs the feature extractor of a calibrated model")
    model.eval()
    ins, recs, maps, scores, codes = [], [], [], [], []
    if uses_backbone(s):  # the extractor's activations, not the images, bound a batch's memory
        from aedetect.anomaly.maps.backbone import feature_batch, scale_of

        size = tuple(images.shape[-2:])
        batch_size = feature_batch(size, scale_of(s.pretrained_scale, size), batch_size)  # type: ignore[arg-type]
    for i in range(0, images.shape[0], batch_size):
        xb = scale_to_float(images[i:i + batch_size].to(device), max_value, cfg.data.scaling)
        yb, z, skips = model.forward_parts(xb)  # type: ignore[operator]
        yb = yb.float()
        xu, yu = float_to_unit(xb, cfg.data.scaling), float_to_unit(yb, cfg.data.scaling)
        out = family.map(BatchPass(xb, yb, xu, yu, skips), s, state)
        m = out.map
        maps.append(m.cpu())
        scores.append(image_score(m, s.score, s.topk_percent).cpu())
        if s.latent == "knn":
            codes.append(latent_vectors(z, skips, s, xb, backbone, xu, shared_features(out.features, s, xb)).cpu())
        if keep_images:
            ins.append(xu.cpu())
            recs.append(yu.cpu())
        if on_batch is not None:
            on_batch(xb.shape[0])
    empty = torch.empty(0)
    return RawScores(
        inputs=torch.cat(ins) if ins else empty, recon=torch.cat(recs) if recs else empty,
        maps=torch.cat(maps), recon_scores=torch.cat(scores), codes=torch.cat(codes) if codes else None)
