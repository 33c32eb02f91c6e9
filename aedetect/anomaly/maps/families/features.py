"""The ``features`` map: each location's encoder features against the nearest of the training
images' (the mathematics: aedetect.anomaly.maps.featuremap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aedetect.anomaly.maps.families.bank import FeatureBankMap, as_stored
from aedetect.anomaly.maps.family import BatchPass, MapState, RecordCheck
from aedetect.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from aedetect.anomaly.settings import AnomalySettings
    from aedetect.core.config import Config
    from aedetect.data.imageset import ImageSet


class FeaturesMap(FeatureBankMap):
    """Encoder level ``feature_level``'s features, pooled, against a bank of the training images'."""

    names = ("features",)

    def check_config(self, cfg: Config, s: AnomalySettings) -> None:
        if cfg.model.arch != "conv":
            raise ConfigError(f"anomaly.map: 'features' needs a convolutional model (model.arch is {cfg.model.arch!r})")
        if s.feature_level >= len(cfg.model.widths):
            raise ConfigError(f"anomaly.feature_level: {s.feature_level} is not a level of this model "
                              f"(0..{len(cfg.model.widths) - 1})")

    def build(self, model: nn.Module, train: ImageSet, cfg: Config, s: AnomalySettings,
              device: torch.device | str, backbone: nn.Module | None) -> MapState:
        from aedetect.anomaly.maps.featuremap import build_bank

        bank = build_bank(model, train, cfg.data.scaling, s.feature_level, s.feature_pool, s.feature_bank,
                          device, batch_size=cfg.train.batch_size, seed=cfg.train.seed)
        return MapState(bank=as_stored(bank, device), backbone=backbone)

    def check_record(self, check: RecordCheck, s: AnomalySettings, cfg: Config) -> None:
        if not 0 <= s.feature_level < cfg.model.levels:
            raise check.bad("settings.feature_level", f"is {s.feature_level}, not a level of this model "
                            f"(0..{cfg.model.levels - 1})")
        super().check_record(check, s, cfg)

    def raw_map(self, p: BatchPass, s: AnomalySettings, state: MapState) -> Tensor:
        from aedetect.anomaly.maps.featuremap import feature_distance_map, pool_features

        f = pool_features(p.skips[s.feature_level], s.feature_pool)
        return feature_distance_map(f, state.bank, s.feature_level, tuple(p.x.shape[-2:]))  # type: ignore[arg-type]


FEATURES = FeaturesMap()
