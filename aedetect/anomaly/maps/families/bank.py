"""What the two nearest-neighbour maps share (``features``, ``pretrained``): a bank of training
feature vectors, kept float16 in the record's ``feature_bank``, and a map that no ONNX graph
can hold (every pixel's nearest neighbour among up to 30,000 vectors is a pixels x bank
distance matrix per image, gigabytes a batch in a graph that cannot chunk it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aedetect.anomaly.maps.family import MapFamily, MapState, RecordCheck

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from aedetect.anomaly.settings import AnomalySettings
    from aedetect.core.config import Config


def as_stored(bank: Tensor, device: torch.device | str) -> Tensor:
    """The float16 values the model file keeps and scoring will see, so the threshold is set
    on the scores ``score`` computes (a float32 bank moved them by about 5e-5)."""
    from aedetect.anomaly.maps.latent import decode_bank, encode_bank

    return decode_bank(encode_bank(bank.cpu())).to(device)


class FeatureBankMap(MapFamily):
    """A map of distances to the nearest of the training feature vectors in ``feature_bank``."""

    keys = ("feature_bank",)
    needs_training_images = True
    not_exportable = "a per-pixel nearest-neighbour search over the feature bank"

    def encode(self, state: MapState) -> dict[str, Any]:
        from aedetect.anomaly.maps.latent import encode_bank

        assert state.bank is not None
        return {"feature_bank": encode_bank(state.bank.cpu())}

    def decode(self, cal: dict[str, Any], device: torch.device | str) -> MapState:
        from aedetect.anomaly.maps.latent import decode_bank

        return MapState(bank=decode_bank(cal["feature_bank"]).to(device))

    def check_record(self, check: RecordCheck, s: AnomalySettings, cfg: Config) -> None:
        check.bank("feature_bank")

    def missing(self, state: MapState) -> str | None:
        return None if state.bank is not None else \
            f"anomaly.map: {self.names[0]!r} needs the feature bank of a calibrated model"
