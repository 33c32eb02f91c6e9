"""A denoise model as one ONNX graph: noisy images in [0, 1] -> denoised images in [0, 1].

The graph is :meth:`Denoiser.denoise_tensor` on an image processed whole: the same reflect
margin (``overlap`` pixels, plus the pad to the model's stride) around the image, the model,
the crop back. Batch, height and width are dynamic; an image needs more than
``margin + stride`` pixels per side (the reflect pad's limit; the eager Denoiser switches to
replicate padding below that). The output is not clipped, as ``denoise_tensor``'s is not.
Tiling for images larger than memory allows is the caller's (aedetect.denoise.tiling shows how).

A dense bottleneck or the ``mlp`` arch fixes the input size, which the margin breaks: those
models are refused (the Denoiser cannot run them either).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.core.cae import padded
from aedetect.core.modelfile import ModelFile
from aedetect.core.onnx import base_metadata, export_copy, export_onnx
from aedetect.denoise.tiling import DEFAULT_OVERLAP
from aedetect.errors import ExportError


class DenoiseGraph(nn.Module):
    """``forward(images in [0, 1])`` -> denoised images, same shape."""

    def __init__(self, model: nn.Module, scaling: str, stride: int, margin: int) -> None:
        super().__init__()
        self.model = model
        self.symmetric = scaling == "symmetric"
        self.stride = stride
        self.margin = margin

    def forward(self, images: Tensor) -> Tensor:
        y = images * 2 - 1 if self.symmetric else images
        h, w = y.shape[-2:]
        m, s = self.margin, self.stride
        ph, pw = padded(h + 2 * m, s) - h - 2 * m, padded(w + 2 * m, s) - w - 2 * m  # see cae._pad
        out = self.model(F.pad(y, (m, m + pw, m, m + ph), mode="reflect"))[..., m:m + h, m:m + w]
        return (out + 1) / 2 if self.symmetric else out


def denoise_metadata(mf: ModelFile, margin: int) -> dict[str, Any]:
    stride = mf.config.model.total_stride
    return {
        **base_metadata("denoise", mf.config.data, None),
        "outputs": "denoised",
        "output": "float32, same shape, in [0, 1] up to overshoot: clip, multiply by the type's maximum, round",
        "margin": margin,
        "stride": stride,
        "min_side": margin + stride,
        "noise": mf.calibration.get("noise", {}),
        "source_model": Path(mf.path).name,
    }


def export_denoise(mf: ModelFile, out: str | Path, overwrite: bool = False, opset: int | None = None,
                   margin: int = DEFAULT_OVERLAP) -> Path:
    """Write the ONNX graph of a denoise model (see the module docstring)."""
    c = mf.config
    if c.task != "denoise":
        raise ExportError(f"{mf.path}: a {c.task} model, not a denoise model")
    if c.model.arch == "mlp" or c.model.bottleneck == "dense":
        raise ExportError(f"{mf.path}: a denoise model with a dense layer (fixed input size) cannot take the "
                          "reflect margin; export a convolutional model")
    if margin < 0:
        raise ExportError(f"--margin: must be >= 0, got {margin}")
    stride = c.model.total_stride
    graph = DenoiseGraph(export_copy(mf.model), c.data.scaling, stride, margin)
    side = margin + stride + 24
    example = torch.rand(2, c.data.channels, side, side + 8, generator=torch.Generator().manual_seed(0))
    return export_onnx(graph, example, out, output_names=["denoised"],
                       dynamic_axes={0: "batch", 2: "height", 3: "width"},
                       metadata=denoise_metadata(mf, margin), overwrite=overwrite, opset=opset)
