"""Scores and thresholds of a tiled model (aedetect.anomaly.maps.tiles): whole images, never tiles.

Why whole images: a whole image's score comes from its stitched map, whose top pixels are a
maximum over all its tiles (81 for a 2048x2048 image at 256-pixel tiles), so it sits above
almost every single tile's score; a threshold set on tiles would flag nearly every normal
image. So the threshold, the pixel threshold and the heat maps' colour scale are set on whole
calibration images scored exactly as ``aedetect score`` scores them (:func:`combine_tiled`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aedetect.anomaly.calibration.threshold import combine_scores, set_fpr_threshold, set_pixel_thresholds
from aedetect.anomaly.maps.run import RawScores
from aedetect.anomaly.maps.tiles import TiledScores, run_tiled, tile_boxes
from aedetect.anomaly.settings import AnomalySettings
from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet

log = logging.getLogger("aedetect")

PIXEL_SAMPLE = 2_000_000  # map values kept for the pixel threshold's quantile (as untiled calibration)


def combine_tiled(ts: TiledScores, calibration: dict[str, Any], s: AnomalySettings,
                  bank: Tensor | None = None) -> Tensor:
    """Whole images' scores: the stitched map's score, plus, with a latent kNN part, the largest
    latent distance of any of the image's tiles (a defect lies in one tile; the mean over 81
    tiles would dilute it 81 times), both scaled as :func:`combine_scores` scales them."""
    if s.latent != "knn":
        return ts.raw.recon_scores
    codes = ts.tile_codes
    only_latent = RawScores(inputs=torch.empty(0), recon=torch.empty(0), maps=torch.empty(0),
                            recon_scores=torch.zeros(codes.shape[0]), codes=codes)  # type: ignore[union-attr]
    lat = combine_scores(only_latent, calibration, s, bank=bank).float()  # the latent part of each tile
    n = ts.raw.recon_scores.shape[0]
    worst = torch.full((n,), float("-inf")).scatter_reduce(0, ts.owner, lat, "amax")
    return s.recon_weight * ts.raw.recon_scores / calibration["recon_scale"] + worst


def decoded_parts(cal: dict[str, Any], s: AnomalySettings, device: torch.device | str) -> dict[str, Any]:
    """The fitted parts of a calibration record that scoring uses, decoded from the record (the
    float16 values ``score`` will see): the map family's ``bank``, ``segmenter`` and
    ``backbone`` (aedetect.anomaly.maps.registry), and the latent bank."""
    from aedetect.anomaly.maps.latent import decode_bank
    from aedetect.anomaly.maps.registry import decode_state

    state = decode_state(cal, s, device)
    return {"bank": state.bank, "segmenter": state.segmenter, "backbone": state.backbone,
            "latent_bank": decode_bank(cal["latent_bank"]) if s.latent == "knn" else None}


@torch.no_grad()
def calibrate_whole(cal: dict[str, Any], model: nn.Module, whole: ImageSet, cfg: Config,
                    device: torch.device | str, batch_size: int = 64, seed: int = 0) -> dict[str, Any]:
    """Re-set ``cal``'s image threshold (target FPR), pixel threshold and map colour scale on
    the whole ``images`` scored in tiles, as ``score`` scores them; ``cal`` holds what the
    tiles' calibration built (banks, networks, latent scales, the chosen settings). A few
    images at a time, keeping their scores and a seeded sample of their map values."""
    s = AnomalySettings.from_config(cal["settings"])
    parts = decoded_parts(cal, s, device)
    latent_bank = parts.pop("latent_bank")
    tiles = len(tile_boxes(tuple(whole.images.shape[-2:]), tuple(cfg.data.size)))  # type: ignore[arg-type]
    per_call = max(1, batch_size // tiles)
    rng = np.random.default_rng(seed)
    per_image = max(1, PIXEL_SAMPLE // max(1, len(whole)))
    scores, pixels = [], []
    for i in range(0, len(whole), per_call):
        ts = run_tiled(model, whole.images[i:i + per_call], whole.max_value, cfg, s, device, batch_size=batch_size,
                       keep_images=False, **parts)
        scores.append(combine_tiled(ts, cal, s, bank=latent_bank))
        for m in ts.raw.maps.flatten(1).numpy():
            pixels.append(m if m.size <= per_image else rng.choice(m, per_image, replace=False))
    normal = torch.cat(scores).numpy().astype(np.float64)
    set_fpr_threshold(cal, normal, s.target_fpr)
    set_pixel_thresholds(cal, np.concatenate(pixels), s)
    cal["calib_images"] = len(whole)
    cal["tiling"] = {"image_size": list(whole.images.shape[-2:]), "tile": list(cfg.data.size),  # type: ignore[arg-type]
                     "tiles_per_image": tiles}
    return cal
