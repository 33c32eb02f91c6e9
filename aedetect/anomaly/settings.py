"""The anomaly head's settings: ``Config.anomaly`` validated into :class:`AnomalySettings`.

A higher score (and a higher map value) means more anomalous, everywhere (see threshold.py
for the flag and the normalised score).

Settings live in ``Config.anomaly`` (a free table in the recipe, ``--set anomaly.KEY=VALUE``):

==================  ========================================================================
key                 meaning (default)
==================  ========================================================================
map                 per-pixel error: ``mse`` (squared error, mean over channels), ``l1``
                    (absolute error), ``ssim`` (1 - local SSIM, Bergmann et al.), ``mix``
                    (weighted sum, see ``mix``), or ``features``: distance of the encoder's
                    features at each location to the nearest features of the training images
                    (aedetect.anomaly.maps.featuremap; for stochastic textures), or ``learned``: a
                    small segmentation network on the input and the residual, trained after
                    the autoencoder on anomalies made from the training images
                    (aedetect.anomaly.maps.learned), or ``pretrained``: distance of ImageNet-pretrained
                    features (EfficientNet-Lite0's first blocks, aedetect.anomaly.maps.backbone) at
                    each location to the nearest such features of the training images, as
                    PatchCore does (for textures and surfaces; needs no training). Default ``mse``.
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
latent_source       the latent vector: ``code`` (the encoder's code, pooled to at most 4x4),
                    ``features`` (encoder level ``latent_level``'s feature map averaged to a
                    ``latent_grid`` x ``latent_grid`` grid) or ``pixels`` (the input image
                    itself, averaged to at most 32x32: a raw-pixel kNN) or ``pretrained``
                    (ImageNet features, aedetect.anomaly.maps.backbone, of the image enlarged to
                    about 56 pixels, averaged to a ``latent_grid`` grid). Default ``code``.
latent_level        encoder level for ``latent_source = features``; -1 = the deepest (-1).
latent_grid         grid of ``latent_source = features`` (7).
latent_metric       ``euclidean`` or ``cosine`` (vectors scaled to unit length first) (euclidean).
latent_bank         ``calib``: the bank is the calibration images (each scored without itself);
                    ``train``: a seeded sample of at most ``latent_bank_size`` training images,
                    and the calibration images are scored against it like new images (calib).
latent_bank_size    at most this many training images in a ``train`` bank (6000; the bank is
                    stored in the model file; docs/decisions/0008).
latent_k            neighbours for the latent score (5).
latent_weight       weight of the latent part (1.0).
recon_weight        weight of the reconstruction part (1.0); 0 = the latent score alone.
feature_level       encoder level whose features ``map = features`` compares, 0 = first (1).
feature_pool        averaging window of those features, odd, 1 = none (5).
feature_bank        at most this many training feature vectors are kept (30000).
pretrained_scale    enlargement of the images before ``map = pretrained`` extracts features:
                    a whole number, or ``auto`` (default): enough for a shorter side of 128
                    pixels, at most 4 (a 64-pixel crop: 2).
pretrained_bank     at most this many training feature vectors ``map = pretrained`` keeps
                    (10000; each image location is one vector of 176 numbers).
pretrained_coreset  1: the bank is a uniform sample of the training locations (default); N > 1:
                    the greedy coreset (PatchCore's) of ``pretrained_bank`` vectors out of a
                    uniform sample N times as large.
learned_steps       training steps of the ``learned`` map's network (1500).
learned_batch       images per step, half of them with a made-up anomaly (16).
learned_width       channels of that network (32).
select              label-free choice of the scoring settings at fit time
                    (aedetect.anomaly.selection.select): ``auto`` chooses map (mse, l1, ssim,
                    features), smoothing, score, latent kNN on/off, its source, metric and
                    weight by the mean validation
                    AUROC of held-out normal images against synthetic anomalies made from them
                    (aedetect.anomaly.selection.synthetic), unless ``Config.anomaly`` pins one of those
                    keys itself; ``on`` chooses even then; ``none`` keeps the given settings.
                    Default ``auto``.
select_pretrained   whether the ImageNet candidates are tried (where the weights are installed):
                    ``auto`` (default) the ``pretrained`` map on surfaces and the ``pretrained``
                    latent vector on aligned objects (``select_objective = auto``'s test below),
                    each where it was chosen; ``on`` both everywhere; ``off`` neither
                    (docs/decisions/0010).
select_budget       seconds the selection may spend after its first candidates, past which the
                    candidates not yet scored are skipped and counted in the record; 0 (default)
                    = no limit. Its work is bounded without it (``select_images``, the pixels
                    per pass, the ranking samples and banks), and a wall-clock limit made the
                    choice depend on how busy the machine was.
select_images       at most this many held-out normal images it uses, fewer for large
                    images (256).
select_families     the synthetic anomaly families it scores against (a list, see
                    aedetect.anomaly.selection.synthetic), or ``auto`` (default): on aligned objects the
                    three that change a shape (elastic, affine, mirror), on surfaces
                    all twelve; aligned as ``select_objective = auto`` tells them apart.
select_draws        synthetic anomalies per held-out normal image and family: a number, or
                    ``auto`` (default): enough for 64 per family (4 for 17 images, 1 from 64
                    images on), so that a few held-out images still rank the candidates
                    (docs/decisions/0007).
select_sources      the latent vectors its kNN candidates use (all that the model has of
                    ``code``, ``features``, ``pixels``); leave ``pixels`` out to keep the
                    training images themselves (32x32 at most, float16) out of the model file.
select_combine      how a candidate's image AUROCs per family are combined: ``mean``
                    (default) or ``median`` (kept to reproduce docs/decisions/0005).
select_top_up       when fewer than ``select_images`` held-out normal images exist, add
                    images of the early-stopping split (unseen by training; the threshold
                    is still set on the held-out ones alone) up to that many, unless the
                    calibration images were given separately, which may overlap the
                    training images (true; docs/decisions/0007).
autoencoder         whether an autoencoder is trained at all (aedetect.anomaly.selection.plan): ``on``,
                    ``off`` (ImageNet features alone), or ``auto`` (default): before training,
                    the ImageNet candidates are ranked by the label-free objective below, and
                    the autoencoder trains only where they score under ``features_enough``
                    (or where pinned scoring settings read its output).
features_enough     the label-free objective at which ``autoencoder = auto`` trains no
                    autoencoder (0.98).
select_objective    what the selection maximises: ``image`` (the image AUROC averaged
                    over the families), ``image+pixel`` (half that, half the pixel AUROC of
                    the candidate's map on the local families' masks) or ``auto`` (default):
                    ``image`` for aligned objects (the mean image explains at least a tenth of
                    the pixel variance), ``image+pixel`` for surfaces (textures, micrographs;
                    docs/decisions/0005).
==================  ========================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aedetect.core.config import Config
from aedetect.errors import ConfigError

# The built-in map families' names (aedetect.anomaly.maps.families), known here without importing
# them (a config is checked before torch is imported); a family registered later adds its own
# (allow_map, called by aedetect.anomaly.maps.registry.register).
MAPS = ("mse", "l1", "ssim", "mix", "features", "learned", "pretrained")
SCORES = ("max", "mean", "topk")
LATENTS = ("none", "knn")
LATENT_SOURCES = ("code", "features", "pixels", "pretrained")
LATENT_METRICS = ("euclidean", "cosine")
LATENT_BANKS = ("calib", "train")
SELECTS = ("auto", "on", "none")
SELECT_PRETRAINED = ("auto", "on", "off")
AUTOENCODERS = ("auto", "on", "off")
OBJECTIVES = ("auto", "image", "image+pixel")
COMBINES = ("mean", "median")
# The keys label-free selection chooses; a config that sets any of them pins the scoring, and
# ``select = auto`` then keeps it (the recipes measured on a benchmark stay as they are).
SCORING_KEYS = frozenset({"map", "mix", "ssim_window", "smooth_sigma", "score", "topk_percent", "latent",
                          "latent_source", "latent_level", "latent_grid", "latent_metric", "latent_bank",
                          "latent_bank_size", "latent_k", "latent_weight", "recon_weight", "feature_level",
                          "feature_pool", "feature_bank", "learned_steps", "learned_batch", "learned_width",
                          "pretrained_scale", "pretrained_bank", "pretrained_coreset"})
FAMILY_NAMES = ("patch", "scratch", "stain", "hole", "blur", "shift",
                "cutpaste", "mix", "elastic", "affine", "mirror", "contrast")  # aedetect.anomaly.selection.synthetic
# ``select_families = auto`` on aligned objects: the families that change a shape (a new digit
# is a new shape, not a new intensity); ``cutpaste`` is left out, its pasted rectangle leaves a
# seam an error map sees (docs/decisions/0006).
OBJECT_FAMILIES = ("elastic", "affine", "mirror")


def allow_map(name: str) -> None:
    """Make ``map = name`` a valid setting: each name of a registered map family."""
    global MAPS
    if name not in MAPS:
        MAPS = (*MAPS, name)


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
    latent_bank_size: int = 6000
    latent_k: int = 5
    latent_weight: float = 1.0
    recon_weight: float = 1.0
    feature_level: int = 1
    feature_pool: int = 5
    feature_bank: int = 30000
    pretrained_scale: int | str = "auto"
    pretrained_bank: int = 10000
    pretrained_coreset: int = 1
    learned_steps: int = 1500
    learned_batch: int = 16
    learned_width: int = 32
    select: str = "auto"
    select_pretrained: str = "auto"
    select_budget: float = 0.0
    select_images: int = 256
    select_families: list[str] | str = "auto"
    select_draws: int | str = "auto"
    select_sources: list[str] = field(default_factory=lambda: list(LATENT_SOURCES))
    select_objective: str = "auto"
    select_combine: str = "mean"
    select_top_up: bool = True
    autoencoder: str = "auto"
    features_enough: float = 0.98

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
        choice("select", SELECTS)
        choice("select_objective", OBJECTIVES)
        choice("select_combine", COMBINES)
        choice("select_pretrained", SELECT_PRETRAINED)
        choice("autoencoder", AUTOENCODERS)
        self.features_enough = number("features_enough", 0, 1)
        if self.pretrained_scale != "auto" and (isinstance(self.pretrained_scale, bool)
                                                or not isinstance(self.pretrained_scale, int)
                                                or not 1 <= self.pretrained_scale <= 8):
            raise ConfigError(f"anomaly.pretrained_scale: expected auto or an integer in [1, 8], "
                              f"got {self.pretrained_scale!r}")
        if self.select_families != "auto" and (not isinstance(self.select_families, list) or not self.select_families
                                               or any(f not in FAMILY_NAMES for f in self.select_families)):
            raise ConfigError(f"anomaly.select_families: expected auto or a list of some of {', '.join(FAMILY_NAMES)}, "
                              f"got {self.select_families!r}")
        if self.select_draws != "auto" and (isinstance(self.select_draws, bool) or not isinstance(self.select_draws, int)
                                            or not 1 <= self.select_draws <= 64):
            raise ConfigError(f"anomaly.select_draws: expected auto or an integer in [1, 64], got {self.select_draws!r}")
        if not isinstance(self.select_top_up, bool):
            raise ConfigError(f"anomaly.select_top_up: expected true or false, got {self.select_top_up!r}")
        if not isinstance(self.select_sources, list) or any(x not in LATENT_SOURCES for x in self.select_sources):
            raise ConfigError(f"anomaly.select_sources: expected a list of some of {', '.join(LATENT_SOURCES)}, "
                              f"got {self.select_sources!r}")
        self.select_budget = number("select_budget", 0, 1e6)
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
        integer("pretrained_bank", 1)
        integer("pretrained_coreset", 1)
        integer("learned_steps", 1)
        integer("learned_batch", 2)
        integer("learned_width", 4)
        integer("select_images", 8)
