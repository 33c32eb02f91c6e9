"""An anomaly model as one ONNX graph: images -> reconstruction, per-pixel map, image score.

The graph takes what a non-Python caller has at hand: float32 (N, C, H, W) in [0, 1] (the
integer pixels divided by the type's maximum, after the model file's channel and resize
policy); it applies the model's own scaling inside. It computes the same map and score as
:meth:`AnomalyDetector.score` (``run_model`` + ``combine_scores``): the map is the map family's
own (aedetect.anomaly.maps.family: ``mse``, ``l1``, ``ssim``, ``mix``, and ``learned``, whose
network travels in the graph), smoothed, then the image-score aggregation and the latent kNN
part with its bank as a constant (with ``latent_source = pretrained`` the ImageNet extractor
travels in the graph too). The threshold, pixel threshold and the normalised score's
constants go to the metadata properties, so a caller flags ``score > threshold`` exactly as
aedetect does.

Not exported: a family that says why not (``not_exportable``): ``features`` and ``pretrained``,
whose every pixel's nearest neighbour among up to 30,000 (10,000) training feature vectors is
a (pixels x bank) distance matrix per image, gigabytes per batch in a graph that cannot chunk
it; such a model is scored with aedetect.

Height and width are fixed at the model's calibration size (batch is dynamic): the threshold
was set on top-k means over that many pixels, with the SSIM window and smoothing radius that
size allows, so a score at another size is not comparable with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aedetect.anomaly.calibration.calfields import check_anomaly_calibration, settings_of
from aedetect.anomaly.maps.family import BatchPass, MapState
from aedetect.anomaly.maps.latent import decode_bank, latent_vectors
from aedetect.anomaly.maps.registry import BACKBONE_KEY, family_of
from aedetect.anomaly.maps.run import image_score
from aedetect.anomaly.settings import AnomalySettings
from aedetect.core.config import Config
from aedetect.core.modelfile.file import ModelFile
from aedetect.core.modelfile.onnx import base_metadata, export_copy, export_onnx
from aedetect.data.imageset import float_to_unit
from aedetect.errors import ExportError

OUTPUTS = ["reconstruction", "map", "score"]


def knn_distance_graph(codes: Tensor, bank: Tensor, k: int, margin: int = 16) -> Tensor:
    """:func:`aedetect.anomaly.maps.latent.knn_distance` for new images in a form a graph holds:
    the matrix-product distances shortlist ``k + margin`` candidates, and the mean of the ``k``
    smallest exact (pair by pair) distances to those is the score; a bank no larger than the
    shortlist is compared pair by pair in full. Memory is N x shortlist x D, not N x bank x D."""
    kk = min(k, bank.shape[0])
    if bank.shape[0] <= kk + margin:
        near = bank.unsqueeze(0).expand(codes.shape[0], -1, -1)
    else:
        d2 = (codes * codes).sum(1, keepdim=True) - 2 * codes @ bank.T + (bank * bank).sum(1)
        idx = d2.topk(kk + margin, dim=1, largest=False).indices
        near = bank[idx]
    exact = (near - codes.unsqueeze(1)).pow(2).sum(2).sqrt()
    return exact.topk(kk, dim=1, largest=False).values.mean(1)


class AnomalyGraph(nn.Module):
    """``forward(images in [0, 1])`` -> (reconstruction in [0, 1], map (N, 1, H, W), score (N,))."""

    def __init__(self, model: nn.Module, scaling: str, s: AnomalySettings, calibration: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.symmetric = scaling == "symmetric"
        self.scaling = scaling
        self.s = s
        self.family = family_of(s)
        state = self.family.export_state(calibration)
        # Registered as attributes, so the graph holds them (``segmenter``: the learned map's network).
        self.segmenter: nn.Module | None = state.segmenter
        self.register_buffer("map_bank", state.bank)
        self.latent = s.latent == "knn"
        self.backbone: nn.Module | None = None
        if self.latent and s.latent_source == "pretrained":
            from aedetect.anomaly.maps.backbone import decode_backbone

            self.backbone = decode_backbone(calibration[BACKBONE_KEY], "cpu").eval()
        if self.latent:
            self.register_buffer("bank", decode_bank(calibration["latent_bank"]))
            self.recon_scale = float(calibration["recon_scale"])
            self.latent_scale = float(calibration["latent_scale"])

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        xb = images * 2 - 1 if self.symmetric else images
        yb, z, skips = self.model.forward_parts(xb)  # type: ignore[operator]
        xu, yu = float_to_unit(xb, self.scaling), float_to_unit(yb, self.scaling)
        state = MapState(bank=self.map_bank, segmenter=self.segmenter, backbone=self.backbone)
        m = self.family.map(BatchPass(xb, yb, xu, yu, skips), self.s, state).map
        score = image_score(m, self.s.score, self.s.topk_percent)
        if self.latent:
            lat = knn_distance_graph(latent_vectors(z, skips, self.s, xb, self.backbone, xu), self.bank, self.s.latent_k)
            score = (self.s.recon_weight * score / self.recon_scale
                     + self.s.latent_weight * lat / self.latent_scale)
        return yu, m, score


def anomaly_metadata(mf: ModelFile, s: AnomalySettings) -> dict[str, Any]:
    """Everything a runtime needs to reproduce ``flag`` and the normalised score."""
    cal = mf.calibration
    size = tuple(mf.config.data.size)  # type: ignore[arg-type]
    return {
        **base_metadata("anomaly", mf.config.data, size),  # type: ignore[arg-type]
        "outputs": ",".join(OUTPUTS),
        "map": family_of(s).label(s),
        "score": s.score if s.score != "topk" else f"topk {s.topk_percent}%",
        "latent": s.latent,
        "threshold": float(cal["threshold"]),
        "threshold_rule": str(cal.get("threshold_rule", "fpr")),
        "pixel_threshold": float(cal["pixel_threshold"]),
        "spread": float(cal["spread"]),
        "normal_median": float(cal["normal_median"]),
        "flag": "score > threshold",
        "pixel_mask": "map > pixel_threshold",
        "normalized": "1 / (1 + exp(-(score - threshold) / spread))",
        "source_model": Path(mf.path).name,
    }


def check_exportable(cal: Any, cfg: Config, path: str | Path) -> AnomalySettings:
    """Whether a model's metadata can become a graph, before the model is loaded (the CLI asks
    first, so a refusal builds nothing): a calibrated anomaly model, not tiled, a map the graph can
    compute, a fixed image size, and every calibration field the graph reads. Returns the
    scoring settings."""
    if cfg.task != "anomaly" or not isinstance(cal, dict) or "threshold" not in cal:
        raise ExportError(f"{path}: not a calibrated anomaly model (task {cfg.task!r})")
    if cfg.data.image_size is not None:  # its threshold is on whole images' stitched maps, not on one tile
        (h, w), (th, tw) = cfg.data.image_size, cfg.data.size
        raise ExportError(f"{path}: a tiled model (images of {h}x{w} scored in tiles of {th}x{tw}) cannot be "
                          "exported: its threshold is set on whole stitched images, which one fixed-size graph "
                          "does not compute; score it with `aedetect score`, or fit with --set data.tile=off")
    s = settings_of(cal, cfg, path)
    why = family_of(s).not_exportable
    if why:
        raise ExportError(f"{path}: anomaly.map {s.map!r} cannot be exported to ONNX ({why}); "
                          "score it with `aedetect score`")
    check_anomaly_calibration(cal, cfg, path)  # every field the graph reads, in one line if bad
    if cfg.data.size is None:
        raise ExportError(f"{path}: the model records no image size (data.size); the export fixes the "
                          "calibration size")
    return s


def export_anomaly(mf: ModelFile, out: str | Path, overwrite: bool = False, opset: int | None = None) -> Path:
    """Write the ONNX graph of a calibrated anomaly model (see the module docstring)."""
    cal = mf.calibration
    s = check_exportable(cal, mf.config, mf.path)
    h, w = mf.config.data.size  # type: ignore[misc]
    graph = AnomalyGraph(export_copy(mf.model), mf.config.data.scaling, s, cal)
    example = torch.rand(2, mf.config.data.channels, h, w, generator=torch.Generator().manual_seed(0))
    return export_onnx(graph, example, out, output_names=OUTPUTS, dynamic_axes={0: "batch"},
                       metadata=anomaly_metadata(mf, s), overwrite=overwrite, opset=opset)
