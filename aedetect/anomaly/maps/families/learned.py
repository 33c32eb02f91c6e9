"""The ``learned`` map: a small segmentation network on the input and the residual, trained at
calibration on anomalies made from the training images (aedetect.anomaly.maps.learned); its
network travels in the record's ``segmenter`` and in the ONNX graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aedetect.anomaly.maps.family import BatchPass, MapFamily, MapState, RecordCheck

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from aedetect.anomaly.settings import AnomalySettings
    from aedetect.core.config import Config
    from aedetect.data.imageset import ImageSet

MAX_WIDTH = 1024  # a stored network's sizes, bounded on loading (a crafted record allocates nothing)
MAX_CHANNELS = 16


class LearnedMap(MapFamily):
    """The segmenter's per-pixel anomaly probability."""

    names = ("learned",)
    keys = ("segmenter",)
    needs_training_images = True

    def build(self, model: nn.Module, train: ImageSet, cfg: Config, s: AnomalySettings,
              device: torch.device | str, backbone: nn.Module | None) -> MapState:
        from aedetect.anomaly.maps.learned import train_segmenter

        seg = train_segmenter(model, train, cfg.data.scaling, s.learned_steps, s.learned_width, s.learned_batch,
                              device, seed=cfg.train.seed)
        return MapState(segmenter=seg, backbone=backbone)

    def encode(self, state: MapState) -> dict[str, Any]:
        from aedetect.anomaly.maps.learned import encode_segmenter

        return {"segmenter": encode_segmenter(state.segmenter)}  # type: ignore[arg-type]

    def decode(self, cal: dict[str, Any], device: torch.device | str) -> MapState:
        from aedetect.anomaly.maps.learned import decode_segmenter

        return MapState(segmenter=decode_segmenter(cal["segmenter"], device))

    def check_record(self, check: RecordCheck, s: AnomalySettings, cfg: Config) -> None:
        from aedetect.anomaly.maps.learned import decode_segmenter

        check.network("segmenter", decode_segmenter, (("channels", MAX_CHANNELS), ("width", MAX_WIDTH)))

    def missing(self, state: MapState) -> str | None:
        return None if state.segmenter is not None else \
            "anomaly.map: 'learned' needs the trained network of a calibrated model"

    def raw_map(self, p: BatchPass, s: AnomalySettings, state: MapState) -> Tensor:
        from aedetect.anomaly.maps.learned import learned_map

        return learned_map(state.segmenter, p.x, p.y)  # type: ignore[arg-type]


LEARNED = LearnedMap()
