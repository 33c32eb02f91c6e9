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

from aedetect.core.model.cae import padded
from aedetect.core.modelfile.file import ModelFile
from aedetect.core.modelfile.onnx import base_metadata, export_copy, export_onnx
from aedetect.denoise.tiling import DEFAULT_OVERLAP
from aedetect.errors import ExportError


class DenoiseGraph(nn.Module):
    """``forward(images in [0, 1])`` -> denoised images, same shape."""

    def __init__(self, model: nn.Module, scaling: str, stride: int, margin: int, channels: int = 1) -> None:
        super().__init__()
        self.model = model
        self.channels = channels
        self.symmetric = scaling == "symmetric"
        self.stride = stride
        self.margin = margin

    def forward(self, images: Tensor) -> Tensor:
        y = images
        if self.symmetric:  # the image channels only: a noise-level channel keeps its sigma / 255
            c = self.channels
            y = torch.cat([images[:, :c] * 2 - 1, images[:, c:]], 1)
        h, w = y.shape[-2:]
        m, s = self.margin, self.stride
        ph, pw = padded(h + 2 * m, s) - h - 2 * m, padded(w + 2 * m, s) - w - 2 * m  # see cae._pad
        out = self.model(F.pad(y, (m, m + pw, m, m + ph), mode="reflect"))[..., m:m + h, m:m + w]
        return (out + 1) / 2 if self.symmetric else out  # a noise-level channel is not in the output


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
        "input": (f"float32 (N, {mf.config.data.channels + 1}, H, W): the image in [0, 1], then one channel "
                  "holding the noise sigma / 255 (0..255 scale) at every pixel") if mf.config.model.noise_map
        else f"float32 (N, {mf.config.data.channels}, H, W) in [0, 1]",
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
    graph = DenoiseGraph(export_copy(mf.model), c.data.scaling, stride, margin, c.data.channels)
    side = margin + stride + 24
    # A model with a noise-level input takes one more channel: sigma / 255 at every pixel.
    example = torch.rand(2, c.model.input_channels, side, side + 8, generator=torch.Generator().manual_seed(0))
    return export_onnx(graph, example, out, output_names=["denoised"],
                       dynamic_axes={0: "batch", 2: "height", 3: "width"},
                       metadata=denoise_metadata(mf, margin), overwrite=overwrite, opset=opset)
