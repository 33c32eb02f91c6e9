"""``AnomalyDetector``: the anomaly head as a scikit-learn-style estimator.

    det = AnomalyDetector(preset="small", epochs=20).fit(good_images)
    res = det.score(new_images)          # AnomalyResult: scores, normalised, flags, maps
    det.save("model.safetensors")         # the same model file ``aedetect score`` reads

Score direction, everywhere: **higher = more anomalous**. ``flags`` are ``scores > threshold_``;
``normalized`` maps ``threshold_`` to 0.5. ``predict`` returns 1 for anomalous and 0 for normal
(not scikit-learn's outlier convention of -1/+1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, stack_images
from aedetect.errors import DataError, ModelFileError
from aedetect.anomaly.maps.family import MapState
from aedetect.anomaly.maps.run import run_model
from aedetect.anomaly.settings import AnomalySettings
from aedetect.anomaly.calibration.threshold import combine_scores, f1_threshold, normalise
from aedetect.anomaly.calibration.tiled import combine_tiled
from aedetect.anomaly.maps.tiles import choose_tiling, is_tiled, loading_config, run_tiled, to_image_size

if TYPE_CHECKING:
    from aedetect.core.modelfile.file import ModelRecord


@dataclass
class AnomalyResult:
    """Per-image results; every score points the same way: higher = more anomalous.

    ``maps`` (N, H, W) and ``masks`` (N, H, W, bool: map > pixel threshold) are in the model's
    image size (a tiled model's: the whole images' ``data.image_size``, maps stitched from its
    tiles); ``inputs``/``recon`` (N, C, H, W) in [0, 1] when kept.
    """

    scores: np.ndarray
    normalized: np.ndarray
    flags: np.ndarray
    maps: np.ndarray
    masks: np.ndarray
    threshold: float
    pixel_threshold: float
    inputs: np.ndarray | None = None
    recon: np.ndarray | None = None


def as_imageset(images: Any, cfg: Config | None = None) -> ImageSet:
    """ImageSet, (N, C, H, W) / (N, H, W) uint8 tensor or array, list of HxW(xC) arrays, or a folder."""
    if isinstance(images, ImageSet):
        return images
    if isinstance(images, (str, Path)):
        from aedetect.data.sources import load_folder

        return load_folder(images, cfg.data if cfg else Config().data)
    if isinstance(images, list):
        arrs = [np.asarray(a) if np.asarray(a).ndim == 3 else np.asarray(a)[:, :, None] for a in images]
        data_cfg = cfg.data if cfg else Config().data
        t, mx, _ = stack_images(arrs, data_cfg)
        return ImageSet(images=t, max_value=mx)
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise DataError(f"expected images of shape (N, C, H, W) or (N, H, W), got {tuple(t.shape)}")
    if t.is_floating_point():
        raise DataError("pass integer images (uint8 0..255 or uint16); float inputs are ambiguous in range")
    max_value = 255.0 if t.dtype == torch.uint8 else 65535.0
    return ImageSet(images=t if t.dtype == torch.uint8 else t.to(torch.int32), max_value=max_value)


def fit_images(images: Any, cfg: Config, head: Any) -> ImageSet:
    """The images ``AnomalyDetector.fit`` trains on, as ``aedetect fit`` would take them: a
    folder through the head (decoded at full resolution where tiling may apply), arrays of
    any size decoded likewise, and tensors as given; tiling decided on them (sets
    ``cfg.data.size`` / ``image_size``; aedetect.anomaly.maps.tiles.choose_tiling)."""
    from dataclasses import replace

    if isinstance(images, (str, Path)):
        return head.training_data(str(images), cfg)
    if isinstance(images, list):
        loading = loading_config(cfg.data)
        return choose_tiling(as_imageset(images, replace(cfg, data=loading)), cfg, shrink=loading is not cfg.data)
    return choose_tiling(as_imageset(images, cfg), cfg, shrink=False)


def check_calibration(cal: dict[str, Any], path: str | Path) -> None:
    """The calibration values scoring compares against are finite numbers: a file whose
    ``threshold`` is a string or a list is refused on loading with one line, never a
    traceback in the middle of scoring."""
    import math

    for key in ("threshold", "pixel_threshold", "map_display_max"):
        v = cal.get(key)
        if v is None and key != "threshold":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ModelFileError(f"{path}: calibration.{key} is {v!r}, not a finite number (file damaged or edited)")


class AnomalyDetector:
    """Train a convolutional autoencoder on normal images and flag images that it reconstructs badly.

    ``__init__`` only stores settings (scikit-learn style). ``preset``/``overrides`` build the
    :class:`~aedetect.core.config.Config`; ``anomaly`` is ``Config.anomaly`` (map, score, target_fpr,
    ...; see :mod:`aedetect.anomaly.head`). After ``fit``: ``model_``, ``config_``,
    ``calibration_``, ``threshold_`` and ``pixel_threshold_``. ``out``: a new folder for the
    training files (metrics.csv, loss curve, checkpoint); None writes nothing.
    """

    def __init__(self, preset: str = "small", epochs: int = 20, size: tuple[int, int] | None = None,
                 channels: int | None = None, anomaly: dict[str, Any] | None = None,
                 overrides: dict[str, Any] | None = None, seed: int = 0, device: str = "auto",
                 out: str | Path | None = None) -> None:
        self.preset = preset
        self.epochs = epochs
        self.size = size
        self.channels = channels
        self.anomaly = anomaly
        self.overrides = overrides
        self.seed = seed
        self.device = device
        self.out = out

    def _config(self) -> Config:
        from aedetect.core.config import apply_overrides
        from aedetect.core.heads import validate
        from aedetect.core.presets import build_config

        cfg = build_config(self.preset, overrides={"train": {"epochs": self.epochs, "seed": self.seed,
                                                             "device": self.device, "grid_every": 0}})
        extra: dict[str, Any] = {"anomaly": dict(self.anomaly or {})}
        if self.size is not None:
            extra["data"] = {"size": list(self.size)}
        if self.channels is not None:
            extra.setdefault("data", {})["channels"] = self.channels
        apply_overrides(cfg, extra)
        if self.overrides:
            apply_overrides(cfg, self.overrides)
        AnomalySettings.from_config(cfg)
        return validate(cfg)

    def fit(self, images: Any, validation: Any = None, calibration: Any = None) -> "AnomalyDetector":
        """Train on normal ``images`` and calibrate on a held-out part of them, or on
        ``calibration`` (separate normal images, the same kinds as ``images``), which all of
        ``images`` then trains on: the honest split when ``images`` are overlapping crops of one
        picture (a random part of them shares its pixels with the rest).

        With a labelled ``validation`` ImageSet (labels 0/1), the threshold is the F1-optimal one
        on it instead of the target-FPR one.
        """
        from aedetect.anomaly.head import AnomalyHead
        from aedetect.core.training.fit import calibration_data, fit_or_restart, prepare_data, split_images
        from aedetect.core.training.train import Trainer, initial_model

        cfg = self._config()
        head = AnomalyHead()
        head.ready(cfg)
        data = prepare_data(fit_images(images, cfg, head), cfg)  # large images: tiled (data.tile)
        given = None if calibration is None else calibration_data(head, as_imageset(calibration, cfg), cfg, None, data)
        # The pipeline of `aedetect fit` (aedetect.core.training.fit), with no run folder unless
        # ``out`` is given: the same split, plan, training with one restart, calibration.
        parts = split_images(head, data, cfg, given)
        cfg = head.plan(cfg, parts.train, parts.calib, parts.top_up)  # maybe no network to train

        def new_trainer(output_mean: float | None = None) -> Trainer:
            model = initial_model(cfg)
            if output_mean is not None:
                model.init_output_bias(output_mean)
            return Trainer(model, cfg, run_dir=self.out)

        # A collapsed output is restarted once, as `aedetect fit` does (aedetect.core.training.fit).
        trainer, result = fit_or_restart(new_trainer(), new_trainer, parts.train, parts.val, cfg)
        self.model_ = result.model.eval()
        self.config_ = cfg
        self.device = str(trainer.device)  # 'auto' resolved: scoring runs where training ran
        self.calibration_ = head.calibrate(result.model, parts.calib, cfg, trainer.device, train=parts.train,
                                           early_stopping=parts.top_up)
        self.history_ = result.history
        if validation is not None:
            val = as_imageset(validation, self.config_)
            if val.labels is None:
                raise DataError("validation: needs labels (0 normal, 1 anomalous) for F1 calibration")
            self.calibration_ = f1_threshold(self.calibration_, val.labels.numpy(),
                                             self.score(val, keep_images=False).scores)
        return self

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "AnomalyDetector":
        """A fitted detector from a model file written by ``fit``/``aedetect fit``;
        ``device`` may be 'auto' (cuda, then mps, then cpu)."""
        from aedetect.core.checks import check_device
        from aedetect.core.modelfile.file import read_record

        check_device(device)
        return cls._build(path, read_record(path), device, fields_checked=False)

    @classmethod
    def from_record(cls, path: str | Path, record: "ModelRecord", device: str = "auto") -> "AnomalyDetector":
        """:meth:`load` for a file that :func:`~aedetect.anomaly.calibration.calfields.check_anomaly_model_file`
        has read and checked (``record``; ``path`` as given, for messages): the file is neither
        resolved nor read again, and its calibration fields are not checked twice."""
        from aedetect.core.checks import check_device

        check_device(device)
        return cls._build(path, record, device, fields_checked=True)

    @classmethod
    def _build(cls, path: str | Path, record: "ModelRecord", device: str, fields_checked: bool) -> "AnomalyDetector":
        from aedetect.core.modelfile.file import load_record
        from aedetect.core.training.train import resolve_device

        dev = str(resolve_device(device))
        mf = load_record(record, device=dev)
        if mf.config.task != "anomaly" or "threshold" not in mf.calibration:
            raise DataError(f"{path}: not a calibrated anomaly model (task {mf.config.task!r})")
        if not fields_checked:  # (check_anomaly_calibration covers check_calibration's fields too)
            check_calibration(mf.calibration, path)
            from aedetect.anomaly.calibration.calfields import check_anomaly_calibration

            check_anomaly_calibration(mf.calibration, mf.config, path)  # every field, before any image
        det = cls(device=dev)
        det.model_, det.config_, det.calibration_ = mf.model, mf.config, mf.calibration
        det.metadata_ = mf.metadata  # the file's whole record (aedetect calibrate copies it on)
        return det

    def save(self, path: str | Path) -> Path:
        from aedetect.core.modelfile.file import save_model

        self._check_fitted()
        return save_model(path, self.model_, self.config_, calibration=self.calibration_)

    @property
    def threshold_(self) -> float:
        self._check_fitted()
        return float(self.calibration_["threshold"])

    @property
    def pixel_threshold_(self) -> float:
        self._check_fitted()
        return float(self.calibration_["pixel_threshold"])

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("AnomalyDetector is not fitted yet; call fit() or AnomalyDetector.load()")

    def score(self, images: Any, keep_images: bool = True, batch_size: int = 64,
              on_batch: Any = None) -> AnomalyResult:
        """Score images: higher = more anomalous; flags = score > threshold_."""
        self._check_fitted()
        data = as_imageset(images, self.config_)
        if data.images.shape[1] != self.config_.data.channels:
            raise DataError(f"images have {data.images.shape[1]} channels, the model takes "
                            f"{self.config_.data.channels}; load them through aedetect.data (it converts)")
        s = AnomalySettings.from_config(self.calibration_.get("settings", self.config_.anomaly))
        state = self._map_state(s)
        parts = {"bank": state.bank, "segmenter": state.segmenter, "backbone": state.backbone}
        latent_bank = self._latent_bank() if s.latent == "knn" else None
        if is_tiled(self.config_):  # whole images at their own resolution, in tiles; maps stitched
            tiled = run_tiled(self.model_, to_image_size(data, self.config_).images, data.max_value, self.config_,
                              s, self.device, batch_size=batch_size, keep_images=keep_images, on_batch=on_batch,
                              **parts)
            raw, scores = tiled.raw, combine_tiled(tiled, self.calibration_, s, bank=latent_bank)
        else:
            raw = run_model(self.model_, data.images, data.max_value, self.config_, s, self.device,
                            batch_size=batch_size, keep_images=keep_images, on_batch=on_batch, **parts)
            scores = combine_scores(raw, self.calibration_, s, bank=latent_bank)
        scores = scores.numpy().astype(np.float64)
        maps = raw.maps[:, 0].numpy()
        return AnomalyResult(
            scores=scores, normalized=normalise(scores, self.calibration_), flags=scores > self.threshold_,
            maps=maps, masks=maps > self.pixel_threshold_, threshold=self.threshold_,
            pixel_threshold=self.pixel_threshold_,
            inputs=raw.inputs.numpy() if keep_images else None, recon=raw.recon.numpy() if keep_images else None)

    def _decoded(self, what: str, decode: Callable[[], Any]) -> Any:
        """A fitted part of the calibration record, decoded once per detector (and again only
        when ``calibration_`` is replaced), not per batch."""
        cache = getattr(self, "_bank_cache", None)
        if cache is None or cache[0] is not self.calibration_:
            cache = (self.calibration_, {})
            self._bank_cache = cache
        if what not in cache[1]:
            cache[1][what] = decode()
        return cache[1][what]

    def _map_state(self, s: AnomalySettings) -> MapState:
        """The map family's fitted state (aedetect.anomaly.maps.registry.decode_state), with the
        ImageNet extractor where the settings use one, on the scoring device."""
        from aedetect.anomaly.maps.registry import BACKBONE_KEY, decode_state, family_of, uses_backbone

        needs = [(key, f"map {s.map!r}") for key in family_of(s).keys]
        if uses_backbone(s):
            needs.append((BACKBONE_KEY, "map or latent_source 'pretrained'"))
        for key, who in needs:
            if key not in self.calibration_:
                raise DataError(f"this model's calibration has no {key.replace('_', ' ')} ({who} needs one)")
        return self._decoded(f"map state {s.map} {self.device}",
                             lambda: decode_state(self.calibration_, s, self.device))

    def _latent_bank(self) -> Tensor:
        """The latent kNN score's bank of normal vectors, on the CPU."""
        from aedetect.anomaly.maps.latent import decode_bank

        if "latent_bank" not in self.calibration_:
            raise DataError("this model's calibration has no latent bank (latent 'knn' needs one)")
        return self._decoded("latent_bank", lambda: decode_bank(self.calibration_["latent_bank"]))

    def anomaly_score(self, images: Any) -> np.ndarray:
        """Image scores only (higher = more anomalous)."""
        return self.score(images, keep_images=False).scores

    def predict(self, images: Any) -> np.ndarray:
        """1 = anomalous (score > threshold_), 0 = normal."""
        return self.score(images, keep_images=False).flags.astype(np.int64)
