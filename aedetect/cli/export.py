"""``aedetect export MODEL --format onnx --out FILE``: the model as an ONNX graph with its
threshold and preprocessing in the metadata (aedetect.anomaly.export, aedetect.denoise.export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.errors import ExportError

FORMATS = ("onnx",)


@app.command()
@handle_errors
def export(
    model: Annotated[Path, typer.Argument(help="Model file written by `aedetect fit` (anomaly or denoise).")],
    out: Annotated[Path, typer.Option(help="ONNX file to write (must not exist unless --overwrite).")],
    format_: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset (default: the exporter's recommended one).")] = None,
    margin: Annotated[int, typer.Option(help="Denoise models: reflect margin in pixels around each image, as `aedetect denoise` uses.")] = 32,
) -> None:
    """Export a model to ONNX: anomaly -> reconstruction, map and score (threshold in the metadata); denoise -> the denoised image. Needs the onnx extra."""
    from aedetect.core.modelfile import load_model
    from aedetect.core.onnx import require_onnx

    if format_ not in FORMATS:
        raise ExportError(f"--format: {format_!r} is not one of {', '.join(FORMATS)}")
    require_onnx()
    mf = load_model(model, device="cpu")
    if mf.config.task == "anomaly":
        from aedetect.anomaly.export import export_anomaly

        path = export_anomaly(mf, out, overwrite=overwrite, opset=opset)
    elif mf.config.task == "denoise":
        from aedetect.denoise.export import export_denoise

        path = export_denoise(mf, out, overwrite=overwrite, opset=opset, margin=margin)
    else:
        raise ExportError(f"{model}: task {mf.config.task!r} has no export")
    typer.echo(str(path))
