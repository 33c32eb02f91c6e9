"""The anomaly head: error maps, image scores, and the calibration saved in the model file.

Direction, everywhere in aedetect: a higher score (and a higher map value) means more
anomalous. An image is flagged when ``score > threshold``; the normalised score maps the
threshold to 0.5 (and the median normal calibration image to 0.1), so every model reads the same.

Settings live in ``Config.anomaly`` (a free table in the recipe, ``--set anomaly.KEY=VALUE``):

==================  ========================================================================
key                 meaning (default)
==================  ========================================================================
map                 per-pixel error: ``mse`` (squared error, mean over channels), ``l1``
                    (absolute error), ``ssim`` (1 - local SSIM, Bergmann et al.), ``mix``
                    (weighted sum, see ``mix``), or ``features``: distance of the encoder's
                    features at each location to the nearest features of the training images
                    (aedetect.anomaly.featuremap; for stochastic textures), or ``learned``: a
                    small segmentation network on the input and the residual, trained after
                    the autoencoder on anomalies made from the training images
                    (aedetect.anomaly.learned). Default ``mse``.
mix                 weights of the sub-maps for ``map = mix``, e.g. ``{"mse": 1, "ssim": 0.05}``;
                    the maps have different scales, so the weights are not fractions.
ssim_window         odd SSIM window size (11).
smooth_sigma        Gaussian smoothing of the map in pixels, 0 = none (1.0).
score               image score from the map: ``max``, ``mean`` or ``topk`` (mean of the top
                    ``topk_percent`` % pixels). Default ``topk``.
topk_percent        percentage of pixels for ``topk`` (1.0).
target_fpr          false-positive rate on normal images the image threshold is set for (0.01).
pixel_fpr           false-positive rate on normal pixels for the predicted-mask threshold (0.005).
calib_fraction      fraction of the training images held out for calibration only, never seen
                    by training or early stopping (0.15); 0 calibrates on the validation split.
latent              ``none`` or ``knn``: add the mean distance of the image's latent vector to
                    its ``latent_k`` nearest vectors in a bank of normal images
                    (``latent_weight``), each part scaled by its median on normal calibration
                    images. Default ``none``.
latent_source       the latent vector: ``code`` (the encoder's code, pooled to at most 4x4) or
                    ``features`` (encoder level ``latent_level``'s feature map averaged to a
                    ``latent_grid`` x ``latent_grid`` grid). Default ``code``.
latent_level        encoder level for ``latent_source = features``; -1 = the deepest (-1).
latent_grid         grid of ``latent_source = features`` (7).
latent_metric       ``euclidean`` or ``cosine`` (vectors scaled to unit length first) (euclidean).
latent_bank         ``calib``: the bank is the calibration images (each scored without itself);
                    ``train``: a seeded sample of at most ``latent_bank_size`` training images,
                    and the calibration images are scored against it like new images (calib).
latent_bank_size    at most this many training images in a ``train`` bank (2000).
latent_k            neighbours for the latent score (5).
latent_weight       weight of the latent part (1.0).
recon_weight        weight of the reconstruction part (1.0); 0 = the latent score alone.
feature_level       encoder level whose features ``map = features`` compares, 0 = first (1).
feature_pool        averaging window of those features, odd, 1 = none (5).
feature_bank        at most this many training feature vectors are kept (30000).
learned_steps       training steps of the ``learned`` map's network (1500).
learned_batch       images per step, half of them with a made-up anomaly (16).
learned_width       channels of that network (32).
==================  ========================================================================
"""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, float_to_unit, scale_to_float
from aedetect.errors import ConfigError
from aedetect.core.ssim import ssim_map
from aedetect.core.heads import BaseHead

log = logging.getLogger("aedetect")

MAPS = ("mse", "l1", "ssim", "mix", "features", "learned")
SCORES = ("max", "mean", "topk")
LATENTS = ("none", "knn")
LATENT_SOURCES = ("code", "features")
LATENT_METRICS = ("euclidean", "cosine")
LATENT_BANKS = ("calib", "train")
CALIBRATION_VERSION = 1


@dataclass
class AnomalySettings:
    """Validated form of ``Config.anomaly`` (see the module docstring for every key)."""

    map: str = "mse"
    mix: dict[str, float] = field(default_factory=lambda: {"mse": 1.0, "ssim": 0.05})
    ssim_window: int = 11
    smooth_sigma: float = 1.0
    score: str = "topk"
    topk_percent: float = 1.0
    target_fpr: float = 0.01
    pixel_fpr: float = 0.005
    calib_fraction: float = 0.15
    latent: str = "none"
    latent_source: str = "code"
    latent_level: int = -1
    latent_grid: int = 7
    latent_metric: str = "euclidean"
    latent_bank: str = "calib"
    latent_bank_size: int = 2000
    latent_k: int = 5
    latent_weight: float = 1.0
    recon_weight: float = 1.0
    feature_level: int = 1
    feature_pool: int = 5
    feature_bank: int = 30000
    learned_steps: int = 1500
    learned_batch: int = 16
    learned_width: int = 32

    @classmethod
    def from_config(cls, cfg: Config | dict[str, Any]) -> "AnomalySettings":
        """Read and check ``Config.anomaly``; a bad value is one line naming the key."""
        d = dict(cfg.anomaly if isinstance(cfg, Config) else cfg)
        s = cls()
        for k, v in d.items():
            if not hasattr(s, k):
                raise ConfigError(f"anomaly.{k}: unknown key (allowed: {', '.join(sorted(asdict(s)))})")
            setattr(s, k, v)
        s.validate()
        return s

    def validate(self) -> None:
        def choice(key: str, allowed: tuple[str, ...]) -> None:
            if getattr(self, key) not in allowed:
                raise ConfigError(f"anomaly.{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")

        def number(key: str, lo: float, hi: float, lo_open: bool = False) -> float:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo < v if lo_open else lo <= v) or v > hi:
                raise ConfigError(f"anomaly.{key}: must be a number in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}")
            return float(v)

        choice("map", MAPS)
        choice("score", SCORES)
        choice("latent", LATENTS)
        choice("latent_source", LATENT_SOURCES)
        choice("latent_metric", LATENT_METRICS)
        choice("latent_bank", LATENT_BANKS)
        if not isinstance(self.mix, dict) or not self.mix or any(k not in ("mse", "l1", "ssim") for k in self.mix):
            raise ConfigError(f"anomaly.mix: expected weights for some of mse, l1, ssim, got {self.mix!r}")
        for k, w in self.mix.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise ConfigError(f"anomaly.mix: weight of {k} must be a number >= 0, got {w!r}")
        if isinstance(self.ssim_window, bool) or not isinstance(self.ssim_window, int) \
                or self.ssim_window < 3 or self.ssim_window % 2 == 0:
            raise ConfigError(f"anomaly.ssim_window: must be an odd integer >= 3, got {self.ssim_window!r}")
        self.smooth_sigma = number("smooth_sigma", 0, 50)
        self.topk_percent = number("topk_percent", 0, 100, lo_open=True)
        self.target_fpr = number("target_fpr", 0, 0.5, lo_open=True)
        self.pixel_fpr = number("pixel_fpr", 0, 0.5, lo_open=True)
        self.calib_fraction = number("calib_fraction", 0, 0.5)
        self.latent_weight = number("latent_weight", 0, 1e6)
        self.recon_weight = number("recon_weight", 0, 1e6)
        if self.recon_weight == 0 and self.latent != "knn":
            raise ConfigError("anomaly.recon_weight: 0 leaves no score unless anomaly.latent is 'knn'")
        def integer(key: str, lo: int, odd: bool = False) -> None:
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (odd and v % 2 == 0):
                raise ConfigError(f"anomaly.{key}: must be {'an odd' if odd else 'an'} integer >= {lo}, got {v!r}")

        integer("latent_k", 1)
        integer("latent_level", -1)
        integer("latent_grid", 1)
        integer("latent_bank_size", 2)
        integer("feature_level", 0)
        integer("feature_pool", 1, odd=True)
        integer("feature_bank", 1)
        integer("learned_steps", 1)
        integer("learned_batch", 2)
        integer("learned_width", 4)


# ---- maps and scores ------------------------------------------------------------------------
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


def latent_vectors(z: Tensor, skips: list[Tensor], s: AnomalySettings) -> Tensor:
    """(N, D) vectors of the latent kNN score, from one ``forward_parts`` pass.

    ``latent_source = code``: the code, pooled to at most 4x4. ``features``: a level's feature
    map averaged to a ``latent_grid`` grid, which keeps where in the image each feature fired;
    on one-class MNIST the deepest level at 7x7 with the cosine metric and a bank of training
    images, added to the SSIM map's mean, scored mean AUROC 99.03 against 98.43 with the code
    instead (docs/benchmarks-anomaly.md). ``cosine``
    scales each vector to unit length, so the distance compares the pattern of the features,
    not their overall strength.
    """
    if s.latent_source == "features":
        v = F.adaptive_avg_pool2d(skips[s.latent_level].float(), s.latent_grid).flatten(1)
    else:
        if z.ndim == 4 and (z.shape[-1] > 4 or z.shape[-2] > 4):
            z = F.adaptive_avg_pool2d(z, (min(4, z.shape[-2]), min(4, z.shape[-1])))
        v = z.flatten(1).float()
    return F.normalize(v, dim=1) if s.latent_metric == "cosine" else v


@torch.no_grad()
def encode_latent(model: nn.Module, images: Tensor, max_value: float, cfg: Config, s: AnomalySettings,
                  device: torch.device | str = "cpu", batch_size: int = 64) -> Tensor:
    """(N, D) latent vectors of integer images (N, C, H, W), in batches; no maps are made."""
    model.eval()
    out = []
    for i in range(0, images.shape[0], batch_size):
        xb = scale_to_float(images[i:i + batch_size].to(device), max_value, cfg.data.scaling)
        _, z, skips = model.forward_parts(xb)  # type: ignore[operator]
        out.append(latent_vectors(z, skips, s).cpu())
    return torch.cat(out)


def train_latent_bank(model: nn.Module, images: ImageSet, cfg: Config, s: AnomalySettings,
                      device: torch.device | str = "cpu", batch_size: int = 64, seed: int = 0) -> Tensor:
    """Latent vectors of a seeded sample of at most ``latent_bank_size`` training images
    (``latent_bank = train``): a bank of the images the model learnt normality from, larger
    than the calibration set and disjoint from it."""
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:s.latent_bank_size].sort().values
    return encode_latent(model, images.images[pick], images.max_value, cfg, s, device, batch_size)


SHORTLIST_MARGIN = 16  # extra candidates the fast distance pass keeps for the exact one


def knn_distance(codes: Tensor, bank: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """Mean Euclidean distance to the ``k`` nearest bank codes (self excluded when scoring the bank).

    The distances that are averaged are computed pair by pair, never by cdist's matrix-product
    form: that form loses digits to cancellation (about 1e-4 relative) and its rounding depends
    on the other rows, so an image's score would depend on how many images are scored with it
    (a batch of ``aedetect score`` versus a whole set). Pair by pair is slow for long vectors
    (3 s for 500 x 900 vectors of 3,136 numbers), so there the fast form only shortlists the
    ``k`` + 16 nearest candidates and the exact distances are taken to those.
    """
    kk = min(k + int(exclude_self), bank.shape[0])
    if codes.shape[1] <= 256 or bank.shape[0] <= kk + SHORTLIST_MARGIN:
        d = torch.cdist(codes, bank, compute_mode="donot_use_mm_for_euclid_dist")
    else:
        idx = torch.cdist(codes, bank).topk(kk + SHORTLIST_MARGIN, dim=1, largest=False).indices
        d = torch.stack([(bank[idx[i]] - codes[i]).norm(dim=1) for i in range(codes.shape[0])]) \
            if codes.shape[0] else codes.new_zeros((0, idx.shape[1]))
    vals = d.topk(kk, dim=1, largest=False).values
    if exclude_self:
        vals = vals[:, 1:] if kk > 1 else vals
    return vals.mean(1)


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
              on_batch: Any = None, bank: Tensor | None = None, segmenter: nn.Module | None = None) -> RawScores:
    """Score integer images (N, C, H, W) in batches; ``on_batch(n)`` reports progress;
    ``bank``: the training feature vectors ``map = features`` needs, ``segmenter``: the network
    ``map = learned`` needs (both from the calibration record)."""
    if s.map == "features" and bank is None:
        raise ConfigError("anomaly.map: 'features' needs the feature bank of a calibrated model")
    if s.map == "learned" and segmenter is None:
        raise ConfigError("anomaly.map: 'learned' needs the trained network of a calibrated model")
    model.eval()
    ins, recs, maps, scores, codes = [], [], [], [], []
    for i in range(0, images.shape[0], batch_size):
        xb = scale_to_float(images[i:i + batch_size].to(device), max_value, cfg.data.scaling)
        yb, z, skips = model.forward_parts(xb)  # type: ignore[operator]
        yb = yb.float()
        xu, yu = float_to_unit(xb, cfg.data.scaling), float_to_unit(yb, cfg.data.scaling)
        if s.map == "features":
            from aedetect.anomaly.featuremap import feature_distance_map, pool_features

            f = pool_features(skips[s.feature_level], s.feature_pool)
            m = smooth(feature_distance_map(f, bank, s.feature_level, tuple(xb.shape[-2:])),  # type: ignore[arg-type]
                       s.smooth_sigma)
        elif s.map == "learned":
            from aedetect.anomaly.learned import learned_map

            m = smooth(learned_map(segmenter, xb, yb), s.smooth_sigma)  # type: ignore[arg-type]
        else:
            m = error_map(xu, yu, s)
        maps.append(m.cpu())
        scores.append(image_score(m, s.score, s.topk_percent).cpu())
        if s.latent == "knn":
            codes.append(latent_vectors(z, skips, s).cpu())
        if keep_images:
            ins.append(xu.cpu())
            recs.append(yu.cpu())
        if on_batch is not None:
            on_batch(xb.shape[0])
    empty = torch.empty(0)
    return RawScores(
        inputs=torch.cat(ins) if ins else empty, recon=torch.cat(recs) if recs else empty,
        maps=torch.cat(maps), recon_scores=torch.cat(scores), codes=torch.cat(codes) if codes else None)


# ---- calibration ----------------------------------------------------------------------------
def encode_bank(bank: Tensor) -> dict[str, Any]:
    """A float16 code bank as base64 text, so it fits the model file's JSON metadata."""
    arr = bank.numpy().astype(np.float16)
    return {"shape": list(arr.shape), "float16_base64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_bank(d: dict[str, Any]) -> Tensor:
    arr = np.frombuffer(base64.b64decode(d["float16_base64"]), dtype=np.float16).reshape(d["shape"])
    return torch.from_numpy(arr.astype(np.float32))


def combine_scores(raw: RawScores, calibration: dict[str, Any], s: AnomalySettings,
                   exclude_self: bool = False, bank: Tensor | None = None) -> Tensor:
    """Final image score: the reconstruction score, plus the scaled latent kNN part if enabled.

    ``bank``: the decoded ``latent_bank`` of ``calibration`` when the caller keeps it decoded
    (scoring batch by batch); ``exclude_self``: the images scored are the bank itself.
    """
    if s.latent != "knn":
        return raw.recon_scores
    if bank is None:
        bank = decode_bank(calibration["latent_bank"])
    lat = knn_distance(raw.codes, bank, s.latent_k, exclude_self=exclude_self)  # type: ignore[arg-type]
    return (s.recon_weight * raw.recon_scores / calibration["recon_scale"]
            + s.latent_weight * lat / calibration["latent_scale"])


def normalise(scores: Tensor | np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    """Logistic map with threshold -> 0.5 and the median normal calibration score -> 0.1."""
    s = np.asarray(scores, dtype=np.float64)
    z = (s - calibration["threshold"]) / calibration["spread"]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def threshold_at_fpr(normal_scores: np.ndarray, fpr: float) -> float:
    """Smallest threshold t with at most ``fpr`` of the normal scores above it (flag: score > t)."""
    s = np.sort(np.asarray(normal_scores, dtype=np.float64))
    allowed = int(math.floor(fpr * s.size))
    return float(s[s.size - 1 - allowed])


def set_threshold(calibration: dict[str, Any], threshold: float, rule: str, normal_scores: np.ndarray) -> None:
    """Store a threshold and the spread of the normalised score (median normal -> 0.1)."""
    med = float(np.median(normal_scores))
    spread = (threshold - med) / math.log(9.0)
    if not spread > 0:
        spread = max(abs(threshold), 1e-12) * 0.1
    calibration.update(threshold=float(threshold), threshold_rule=rule, spread=float(spread),
                       normal_median=med,
                       calib_fpr=float((np.asarray(normal_scores) > threshold).mean()))


def calibrate_scores(raw: RawScores, s: AnomalySettings, n_images: int,
                     latent_bank: Tensor | None = None) -> dict[str, Any]:
    """Thresholds and scales from normal held-out images (see :meth:`AnomalyHead.calibrate`).

    ``latent_bank``: the training images' latent vectors (``latent_bank = train``); without
    it the calibration images' own vectors are the bank, each scored without itself.
    """
    cal: dict[str, Any] = {"version": CALIBRATION_VERSION, "settings": asdict(s), "calib_images": n_images,
                           "target_fpr": s.target_fpr, "pixel_fpr": s.pixel_fpr}
    own_bank = latent_bank is None
    bank = None
    if s.latent == "knn":
        if raw.codes is None or (own_bank and raw.codes.shape[0] < 2):
            raise ConfigError("anomaly.latent: 'knn' needs at least 2 calibration images")
        cal["latent_bank"] = encode_bank(raw.codes if latent_bank is None else latent_bank)
        bank = decode_bank(cal["latent_bank"])  # the float16 values scoring will see
        cal["recon_scale"] = max(float(raw.recon_scores.median()), 1e-12)
        lat = knn_distance(raw.codes, bank, s.latent_k, exclude_self=own_bank)
        cal["latent_scale"] = max(float(lat.median()), 1e-12)
    scores = combine_scores(raw, cal, s, exclude_self=own_bank, bank=bank).numpy()
    set_threshold(cal, threshold_at_fpr(scores, s.target_fpr), "fpr", scores)
    pix = raw.maps.flatten().numpy()
    if pix.size > 2_000_000:
        pix = np.random.default_rng(0).choice(pix, 2_000_000, replace=False)
    cal["pixel_threshold"] = float(np.quantile(pix, 1 - s.pixel_fpr))
    cal["map_display_max"] = float(np.quantile(pix, 0.999)) * 2
    if n_images < 1 / s.target_fpr:
        log.warning("calibration: %d normal images cannot resolve a %.3g false-positive rate; "
                    "the threshold is the highest normal score", n_images, s.target_fpr)
    return cal


def f1_threshold(calibration: dict[str, Any], labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Replace the FPR threshold by the F1-optimal one on labelled validation scores."""
    from aedetect.anomaly.metrics import best_f1, both_classes

    labels = np.asarray(labels)
    if not both_classes(labels):
        raise ConfigError("F1 calibration needs labelled validation images of both classes")
    f1, t = best_f1(labels, scores)
    cal = dict(calibration)
    set_threshold(cal, t, "f1", np.asarray(scores)[labels == 0])
    cal["validation_best_f1"] = f1
    return cal


class AnomalyHead(BaseHead):
    """Reconstruct normal images; calibrate the flag threshold on held-out normal ones.

    ``calibration_split`` carves a calibration set out of the training images (never trained
    on, never used for early stopping), since a threshold set on the early-stopping split is
    slightly optimistic; with ``calib_fraction = 0`` (or too few images) the validation split
    is used instead.
    """

    name = "anomaly"

    def validate(self, cfg: Config) -> None:
        s = AnomalySettings.from_config(cfg)  # fail before training, not after it
        if s.map == "features":
            if cfg.model.arch != "conv":
                raise ConfigError(f"anomaly.map: 'features' needs a convolutional model (model.arch is {cfg.model.arch!r})")
            if s.feature_level >= len(cfg.model.widths):
                raise ConfigError(f"anomaly.feature_level: {s.feature_level} is not a level of this model "
                                  f"(0..{len(cfg.model.widths) - 1})")
        if s.latent == "knn" and s.latent_source == "features":
            if cfg.model.arch != "conv":
                raise ConfigError("anomaly.latent_source: 'features' needs a convolutional model "
                                  f"(model.arch is {cfg.model.arch!r})")
            if s.latent_level >= len(cfg.model.widths):
                raise ConfigError(f"anomaly.latent_level: {s.latent_level} is not a level of this model "
                                  f"(-1..{len(cfg.model.widths) - 1})")

    def calibration_split(self, train: ImageSet, val: ImageSet, cfg: Config) -> tuple[ImageSet, ImageSet]:
        """(images to train on, images to calibrate on)."""
        frac = AnomalySettings.from_config(cfg).calib_fraction
        if frac <= 0 or len(train) < 10:
            return train, val
        rest, calib = train.split(frac, cfg.train.seed + 7)
        return rest, calib

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None) -> dict[str, Any]:
        """Thresholds on the held-out normal images; with ``map = features`` (or ``latent_bank =
        train``) the bank comes from ``train`` (the images the model trained on), never from
        ``holdout``, so the thresholds are set on images the bank has not seen; likewise the
        ``learned`` map's network is trained on ``train`` only."""
        s = AnomalySettings.from_config(cfg)
        uses_train = [what for what, on in (("anomaly.map 'features'", s.map == "features"),
                                            ("anomaly.map 'learned'", s.map == "learned"),
                                            ("anomaly.latent_bank 'train'", s.latent == "knn" and s.latent_bank == "train"))
                      if on]
        if uses_train and train is None:
            raise ConfigError(f"{' and '.join(uses_train)}: needs the training images at calibration")
        bank = None
        if s.map == "features":
            from aedetect.anomaly.featuremap import build_bank

            bank = build_bank(model, train, cfg.data.scaling, s.feature_level, s.feature_pool, s.feature_bank,
                              device, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
        latent_bank = None
        if s.latent == "knn" and s.latent_bank == "train":
            latent_bank = train_latent_bank(model, train, cfg, s, device, cfg.train.batch_size, cfg.train.seed)
        segmenter = None
        if s.map == "learned":
            from aedetect.anomaly.learned import train_segmenter

            segmenter = train_segmenter(model, train, cfg.data.scaling, s.learned_steps, s.learned_width,
                                        s.learned_batch, device, seed=cfg.train.seed)
        raw = run_model(model, holdout.images, holdout.max_value, cfg, s, device,
                        batch_size=cfg.train.batch_size, keep_images=False, bank=bank, segmenter=segmenter)
        cal = calibrate_scores(raw, s, len(holdout), latent_bank)
        if segmenter is not None:
            from aedetect.anomaly.learned import encode_segmenter

            cal["segmenter"] = encode_segmenter(segmenter)
        if bank is not None:
            cal["feature_bank"] = encode_bank(bank)
        log.info("calibration on %d held-out normal images: threshold %.6g (target FPR %.3g), "
                 "pixel threshold %.6g", len(holdout), cal["threshold"], s.target_fpr, cal["pixel_threshold"])
        return cal
