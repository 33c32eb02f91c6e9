"""Per-pixel anomaly maps and image scores from one pass of the model (:func:`run_model`).

Direction, everywhere in aedetect: a higher map value and a higher score mean more anomalous.
The ``features`` and ``learned`` maps live in their own files (featuremap.py, learned.py);
this file runs whichever map the settings name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.anomaly.maps.latent import latent_vectors
from aedetect.anomaly.settings import AnomalySettings
from aedetect.core.config import Config
from aedetect.core.model.ssim import ssim_map
from aedetect.data.imageset import float_to_unit, scale_to_float
from aedetect.errors import ConfigError


def uses_backbone(s: AnomalySettings) -> bool:
    """Whether the scoring needs the pretrained extractor (aedetect.anomaly.maps.backbone)."""
    return s.map == "pretrained" or (s.latent == "knn" and s.latent_source == "pretrained")


def error_map(x: Tensor, y: Tensor, s: AnomalySettings) -> Tensor:
    """Per-pixel error (N, 1, H, W) between input ``x`` and reconstruction ``y``, both in [0, 1]."""

    def one(kind: str) -> Tensor:
        if kind == "mse":
            return ((x - y) ** 2).mean(1, keepdim=True)
        if kind == "l1":
            return (x - y).abs().mean(1, keepdim=True)
        return (1 - ssim_map(x, y, data_range=1.0, window=s.ssim_window)).mean(1, keepdim=True)

    if s.map != "mix":
        m = one(s.map)
    else:
        m = sum(float(w) * one(k) for k, w in s.mix.items() if w)  # type: ignore[assignment]
    return smooth(m, s.smooth_sigma)


def smooth(m: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of (N, 1, H, W) maps (separable, reflect-padded; sigma 0 = unchanged)."""
    if sigma <= 0:
        return m
    r = max(1, math.ceil(3 * sigma))
    r = min(r, m.shape[-1] - 1, m.shape[-2] - 1)
    if r < 1:
        return m
    t = torch.arange(-r, r + 1, dtype=m.dtype, device=m.device)
    g = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(m, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))


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
    ``bank``: the training feature vectors ``map = features`` or ``pretrained`` needs,
    ``segmenter``: the network ``map = learned`` needs, ``backbone``: the pretrained extractor
    ``map = pretrained`` needs (all from the calibration record)."""
    if s.map in ("features", "pretrained") and bank is None:
        raise ConfigError(f"anomaly.map: {s.map!r} needs the feature bank of a calibrated model")
    if uses_backbone(s) and backbone is None:
        raise ConfigError("anomaly.map / latent_source: 'pretrained' needs the feature extractor of a calibrated model")
    if s.map == "learned" and segmenter is None:
        raise ConfigError("anomaly.map: 'learned' needs the trained network of a calibrated model")
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
        feats: tuple[int, Tensor] | None = None  # the pretrained map's (scale, features), for the latent vector
        if s.map == "features":
            from aedetect.anomaly.maps.featuremap import feature_distance_map, pool_features

            f = pool_features(skips[s.feature_level], s.feature_pool)
            m = smooth(feature_distance_map(f, bank, s.feature_level, tuple(xb.shape[-2:])),  # type: ignore[arg-type]
                       s.smooth_sigma)
        elif s.map == "pretrained":
            from aedetect.anomaly.maps.backbone import pretrained_map, scale_of

            scale = scale_of(s.pretrained_scale, tuple(xb.shape[-2:]))
            feats = (scale, backbone(xu.float(), scale))  # type: ignore[misc]
            m = smooth(pretrained_map(backbone, xu, bank, scale, feats[1]), s.smooth_sigma)  # type: ignore[arg-type]
        elif s.map == "learned":
            from aedetect.anomaly.maps.learned import learned_map

            m = smooth(learned_map(segmenter, xb, yb), s.smooth_sigma)  # type: ignore[arg-type]
        else:
            m = error_map(xu, yu, s)
        maps.append(m.cpu())
        scores.append(image_score(m, s.score, s.topk_percent).cpu())
        if s.latent == "knn":
            codes.append(latent_vectors(z, skips, s, xb, backbone, xu, shared_features(feats, s, xb)).cpu())
        if keep_images:
            ins.append(xu.cpu())
            recs.append(yu.cpu())
        if on_batch is not None:
            on_batch(xb.shape[0])
    empty = torch.empty(0)
    return RawScores(
        inputs=torch.cat(ins) if ins else empty, recon=torch.cat(recs) if recs else empty,
        maps=torch.cat(maps), recon_scores=torch.cat(scores), codes=torch.cat(codes) if codes else None)
