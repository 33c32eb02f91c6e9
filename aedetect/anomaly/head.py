"""The anomaly head: what ``aedetect fit --task anomaly`` adds to the one training loop.

No input corruption; after training, :meth:`AnomalyHead.calibrate` builds what the chosen
map needs (a feature bank, the learned map's network, a latent bank) and sets the thresholds
on held-out normal images. Settings: aedetect.anomaly.settings; maps: maps.py; thresholds:
threshold.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aedetect.anomaly.settings import AnomalySettings
from aedetect.core.config import Config
from aedetect.core.heads import BaseHead
from aedetect.errors import ConfigError

if TYPE_CHECKING:  # torch is imported by calibrate() only: validating a config (``aedetect
    import torch   # info MODEL``, a usage error) must not cost the 1.5 s of ``import torch``
    from torch import nn

    from aedetect.data.imageset import ImageSet

log = logging.getLogger("aedetect")


class AnomalyHead(BaseHead):
    """Reconstruct normal images; calibrate the flag threshold on held-out normal ones.

    ``calibration_split`` carves a calibration set out of the training images (never trained
    on, never used for early stopping), since a threshold set on the early-stopping split is
    slightly optimistic; with ``calib_fraction = 0`` (or too few images) the validation split
    is used instead.
    """

    name = "anomaly"
    _tiles: dict[str, int] | None = None  # cut_split()'s tile counts, for the calibration record
    _preselection: Any = None  # plan()'s ImageNet choice (aedetect.anomaly.selection.plan.Preselection), for calibrate()

    def validate(self, cfg: Config) -> None:
        from aedetect.anomaly.maps.registry import family_of

        s = AnomalySettings.from_config(cfg)  # fail before training, not after it
        family_of(s).check_config(cfg, s)
        if s.latent == "knn" and s.latent_source == "features":
            if cfg.model.arch != "conv":
                raise ConfigError("anomaly.latent_source: 'features' needs a convolutional model "
                                  f"(model.arch is {cfg.model.arch!r})")
            if s.latent_level >= len(cfg.model.widths):
                raise ConfigError(f"anomaly.latent_level: {s.latent_level} is not a level of this model "
                                  f"(-1..{len(cfg.model.widths) - 1})")

    def ready(self, cfg: Config) -> None:
        """``map`` or ``latent_source = pretrained`` needs the ImageNet weights to train; a model
        file does not (it keeps the part of the network it uses)."""
        from aedetect.anomaly.maps.registry import uses_backbone

        if uses_backbone(AnomalySettings.from_config(cfg)):
            from aedetect.anomaly.maps.backbone import weights_file

            path = weights_file()
            if not path.is_file():
                raise ConfigError(f"anomaly.map / latent_source 'pretrained': {path}: no such weights file")

    def training_data(self, data: str | ImageSet, cfg: Config, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
        """The images to train on, decoded at their own resolution where tiling may apply, and
        the tiling decided on them (aedetect.anomaly.maps.tiles.choose_tiling: ``data.size``
        becomes the tile, ``data.image_size`` the whole images' size); untiled images end up
        exactly as decoding with ``cfg.data`` gives them."""
        from dataclasses import replace

        from aedetect.anomaly.maps.tiles import choose_tiling, loading_config
        from aedetect.data.imageset import ImageSet

        if isinstance(data, ImageSet):
            return choose_tiling(data, cfg, shrink=False)
        loading = loading_config(cfg.data)
        images = super().training_data(data, replace(cfg, data=loading), normal_class=normal_class,
                                       data_root=data_root)
        return choose_tiling(images, cfg, shrink=loading is not cfg.data)

    def cut_split(self, parts: Any, cfg: Config) -> Any:
        """A tiled fit's split (aedetect.core.training.fit.Split) of whole images -> the training
        and early-stopping images cut into tiles (seeded samples of at most MAX_TRAIN_TILES and
        MAX_VAL_TILES); the calibration images stay whole (at most MAX_CALIB_TILES tiles' worth),
        since the threshold is set on whole images' scores (aedetect.anomaly.calibration.tiled)."""
        from dataclasses import replace

        from aedetect.anomaly.maps.tiles import (MAX_TRAIN_TILES, MAX_VAL_TILES, calibration_images, is_tiled,
                                                 sample_tiles)

        if not is_tiled(cfg):
            return parts
        seed = cfg.train.seed
        train = sample_tiles(parts.train, cfg, MAX_TRAIN_TILES, seed)
        val = sample_tiles(parts.val, cfg, MAX_VAL_TILES, seed + 1)
        calib = calibration_images(parts.calib, cfg, seed + 2)
        log.info("tiling: %d training tiles of %d training images, %d early-stopping tiles of %d images, "
                 "%d whole calibration images", len(train), len(parts.train), len(val), len(parts.val), len(calib))
        self._tiles = {"train_tiles": len(train), "train_images": len(parts.train), "val_tiles": len(val),
                       "val_images": len(parts.val)}
        return replace(parts, train=train, val=val, calib=calib,
                       top_up=None if parts.top_up is None else val)

    def plan(self, cfg: Config, train: ImageSet, holdout: ImageSet, early_stopping: ImageSet | None) -> Config:
        """Whether an autoencoder is trained at all, and for how long (aedetect.anomaly.selection.plan);
        the ImageNet candidates' choice made on the way is kept for :meth:`calibrate`. A tiled
        fit ranks on tiles of the (whole) held-out images."""
        from aedetect.anomaly.selection.plan import plan

        cfg, self._preselection = plan(cfg, train, selection_tiles(holdout, cfg), early_stopping)
        return cfg

    def _select(self, model: nn.Module, holdout: ImageSet, train: ImageSet | None, cfg: Config,
                s: AnomalySettings, device: torch.device, top_up: ImageSet | None) -> tuple[AnomalySettings, dict[str, Any]]:
        """The label-free selection: the ImageNet candidates' choice made before training where
        no autoencoder was trained; else the selection over the trained model's candidates, kept
        unless that choice beat it on the same synthetic anomalies."""
        from aedetect.anomaly.selection.select import select_settings

        pre = self._preselection
        if pre is not None and cfg.model.arch == "none":
            return pre.settings, {**pre.record, "autoencoder_trained": False}
        chosen, record = select_settings(model, holdout, train, cfg, s, device, top_up)
        if pre is None:
            return chosen, record
        first = {"chosen": pre.record["chosen"], "objective": pre.objective, "comparable": pre.comparable,
                 "features_enough": s.features_enough,
                 "families": pre.record["families"]}
        # Comparable only on the same anomalies: on aligned objects the ImageNet ranking also
        # had local defects (select.families_of), and there the trained selection (which tries
        # the ImageNet vector too) decides.
        if pre.record["families"] == record["families"] and pre.objective > record["chosen_auroc"]:
            log.info("label-free selection: the ImageNet features' %s (%.4f) beats the trained autoencoder's "
                     "best, %s (%.4f); keeping it", pre.record["chosen"], pre.objective, record["chosen"],
                     record["chosen_auroc"])
            return pre.settings, {**pre.record, "autoencoder_trained": True,
                                  "autoencoder_best": {"chosen": record["chosen"], "objective": record["chosen_auroc"]}}
        return chosen, {**record, "autoencoder_trained": True, "features_first": first}

    def calibration_split(self, train: ImageSet, val: ImageSet, cfg: Config) -> tuple[ImageSet, ImageSet]:
        """(images to train on, images to calibrate on)."""
        frac = AnomalySettings.from_config(cfg).calib_fraction
        if frac <= 0 or len(train) < 10:
            return train, val
        rest, calib = train.split(frac, cfg.train.seed + 7)
        return rest, calib

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None, early_stopping: ImageSet | None = None) -> dict[str, Any]:
        """Thresholds on the held-out normal images, with the scoring settings chosen first
        by label-free selection when ``anomaly.select`` asks for it (aedetect.anomaly.selection.select),
        so the threshold is the chosen setting's. With ``map = features`` (or ``latent_bank =
        train``) the bank comes from ``train`` (the images the model trained on), never from
        ``holdout``, so the thresholds are set on images the bank has not seen; likewise the
        ``learned`` map's network is trained on ``train`` only. ``early_stopping``: the
        early-stopping split, which tops up the selection's normal images when ``holdout`` is
        small (only when the head held ``holdout`` out of the same images: calibration images
        given separately mean the training images may overlap, e.g. crops of one picture); the
        threshold is set on ``holdout`` alone."""
        from aedetect.anomaly.maps.latent import train_latent_bank
        from aedetect.anomaly.maps.registry import BACKBONE_KEY, family_of, uses_backbone
        from aedetect.anomaly.maps.run import run_model
        from aedetect.anomaly.selection.select import MIN_SELECT_IMAGES, wants_selection
        from aedetect.anomaly.calibration.threshold import calibrate_scores

        from aedetect.anomaly.maps.tiles import is_tiled

        whole = None
        if is_tiled(cfg):  # choose and build on tiles; set the thresholds on whole images (below)
            whole, holdout = holdout, selection_tiles(holdout, cfg)
            cfg = tiled_latent_bank(cfg)
        s = AnomalySettings.from_config(cfg)
        selection, skipped = None, None
        overlap = check_overlap(holdout if whole is None else whole, train)  # tiled: whole images against training tiles

        if wants_selection(cfg, s):
            top_up = early_stopping if s.select_top_up and early_stopping is not holdout else None
            usable = len(holdout) + (len(top_up) if top_up is not None else 0)
            if usable < MIN_SELECT_IMAGES:  # the top-up counts: 5 calibration + 20 early-stopping images can rank
                skipped = (f"label-free selection skipped: {usable} held-out normal images (needs "
                           f"{MIN_SELECT_IMAGES}); the given anomaly settings are kept")
                log.info(skipped)
            else:
                s, selection = self._select(model, holdout, train, cfg, s, device, top_up)
        family = family_of(s)
        uses_train = [what for what, on in ((f"anomaly.map {s.map!r}", family.needs_training_images),
                                            ("anomaly.latent_bank 'train'", s.latent == "knn" and s.latent_bank == "train"))
                      if on]
        if uses_train and train is None:
            raise ConfigError(f"{' and '.join(uses_train)}: needs the training images at calibration")
        backbone, stored = None, None
        if uses_backbone(s):
            from aedetect.anomaly.maps.backbone import decode_backbone, encode_backbone, load_backbone

            stored = encode_backbone(load_backbone())
            backbone = decode_backbone(stored, device)  # what scoring will load from the model file
        state = family.build(model, train, cfg, s, device, backbone)  # type: ignore[arg-type]
        latent_bank = None
        if s.latent == "knn" and s.latent_bank == "train":
            latent_bank = train_latent_bank(model, train, cfg, s, device, cfg.train.batch_size, cfg.train.seed,
                                            backbone)
        raw = run_model(model, holdout.images, holdout.max_value, cfg, s, device,
                        batch_size=cfg.train.batch_size, keep_images=False, bank=state.bank,
                        segmenter=state.segmenter, backbone=backbone)
        cal = calibrate_scores(raw, s, len(holdout), latent_bank, thresholds=whole is None)
        cal.update(family.encode(state))
        if stored is not None:
            cal[BACKBONE_KEY] = stored
        if selection is not None:
            cal["selection"] = selection
        if skipped is not None:  # `info` and metrics.json say so, so a user sees why nothing was chosen
            cal["selection_skipped"] = skipped
        if overlap is not None:
            cal["overlap_with_training"] = overlap
        if whole is not None:
            from aedetect.anomaly.calibration.tiled import calibrate_whole

            cal = calibrate_whole(cal, model, whole, cfg, device, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
            cal["tiling"].update(self._tiles or {})
            holdout = whole
        log.info("calibration on %d held-out normal images%s: threshold %.6g (target FPR %.3g), "
                 "pixel threshold %.6g", len(holdout), " (whole, scored in tiles)" if whole is not None else "",
                 cal["threshold"], s.target_fpr, cal["pixel_threshold"])
        return cal


def selection_tiles(holdout: ImageSet, cfg: Config) -> ImageSet:
    """What the label-free selection ranks on: the held-out images, or for a tiled fit a seeded
    sample of SELECT_TILES of their tiles (the selection scores images of the model's size;
    plan() and calibrate() draw the same tiles)."""
    from aedetect.anomaly.maps.tiles import SELECT_TILES, is_tiled, sample_tiles

    return sample_tiles(holdout, cfg, SELECT_TILES, cfg.train.seed + 3) if is_tiled(cfg) else holdout


def tiled_latent_bank(cfg: Config) -> Config:
    """A tiled fit's latent kNN bank is the training tiles (``latent_bank = train``), never the
    calibration images': whole calibration images are scored tile by tile against the bank,
    and a bank of their own tiles would find each tile itself (distance 0, a threshold far too
    low). The label-free selection's candidates use the training bank already; a config that
    pins ``latent = knn`` with the calibration bank is switched, in one log line."""
    s = AnomalySettings.from_config(cfg)
    if s.latent != "knn" or s.latent_bank != "calib":
        return cfg
    import copy

    log.info("anomaly.latent_bank: 'train' for a tiled model (its calibration images are scored tile by tile, "
             "and a bank of their own tiles would find each tile itself)")
    cfg = copy.deepcopy(cfg)
    cfg.anomaly["latent_bank"] = "train"
    return cfg


def check_overlap(holdout: ImageSet, train: ImageSet | None) -> dict[str, Any] | None:
    """The calibration images' overlap with the training images (aedetect.anomaly.calibration.overlap),
    warned about in one line when it makes the threshold and the selection optimistic."""
    from aedetect.anomaly.calibration.overlap import calibration_overlap

    if train is None or holdout is train or holdout.images.shape[1] != train.images.shape[1]:
        return None
    found = calibration_overlap(holdout.images.numpy(), train.images.numpy())
    if found is None:
        return None
    if found.worrying:
        log.warning("calibration: %d of %d held-out normal images share most of their pixels with training "
                    "images (overlapping crops of one picture?), so the scoring chosen and the threshold set on "
                    "them are optimistic and new normal images will be flagged far above the target rate; give "
                    "separate normal images (fit --calibration DIR, or aedetect calibrate MODEL DIR --rule fpr --out NEW)",
                    found.images, found.of)
    return found.record()
