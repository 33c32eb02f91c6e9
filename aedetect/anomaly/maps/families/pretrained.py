"""The ``pretrained`` map: each location's ImageNet features (aedetect.anomaly.maps.backbone)
against the nearest of the training images', as PatchCore does; no autoencoder is read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aedetect.anomaly.maps.families.bank import FeatureBankMap, as_stored
from aedetect.anomaly.maps.family import BatchMap, BatchPass, MapState

if TYPE_CHECKING:
    import torch
    from torch import nn

    from aedetect.anomaly.settings import AnomalySettings
    from aedetect.core.config import Config
    from aedetect.data.imageset import ImageSet


class PretrainedMap(FeatureBankMap):
    """The extractor's features of the (enlarged) image against a bank of the training images'."""

    names = ("pretrained",)
    needs_backbone = True
    reads_autoencoder = False

    def build(self, model: nn.Module, train: ImageSet, cfg: Config, s: AnomalySettings,
              device: torch.device | str, backbone: nn.Module | None) -> MapState:
        from aedetect.anomaly.maps.backbone import build_pretrained_bank, scale_of

        bank = build_pretrained_bank(backbone, train, scale_of(s.pretrained_scale, tuple(train.images.shape[-2:])),  # type: ignore[arg-type]
                                     s.pretrained_bank, device, batch_size=cfg.train.batch_size, seed=cfg.train.seed,
                                     coreset=s.pretrained_coreset)
        return MapState(bank=as_stored(bank, device), backbone=backbone)

    def raw_map(self, p: BatchPass, s: AnomalySettings, state: MapState) -> BatchMap:
        from aedetect.anomaly.maps.backbone import pretrained_map, scale_of

        scale = scale_of(s.pretrained_scale, tuple(p.x.shape[-2:]))  # type: ignore[arg-type]
        features = state.backbone(p.x_unit.float(), scale)  # type: ignore[misc]
        return BatchMap(pretrained_map(state.backbone, p.x_unit, state.bank, scale, features),  # type: ignore[arg-type]
                        (scale, features))


PRETRAINED = PretrainedMap()
