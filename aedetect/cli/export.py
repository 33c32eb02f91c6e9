"""``aedetect export MODEL --format onnx --out FILE``: the model as an ONNX graph with its
threshold and preprocessing in the metadata (aedetect.anomaly.jobs.export, aedetect.denoise.export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.errors import ConfigError, ExportError

FORMATS = ("onnx",)
MIN_OPSET = 18  # the dynamo exporter writes at least 18 whatever it is asked (it said 1, wrote 18)
MAX_MARGIN = 1024  # pixels per side; 1e8 padded every image to gigabytes


def check_export_options(model: Path, out: Path, format_: str, opset: int | None, margin: int) -> None:
    """The options, before the model is read: a known format and an opset the exporter writes
    (usage errors, exit 64), a bounded margin, and an --out that is not the model itself
    (``export v --out v --overwrite`` replaced the model with its graph)."""
    from aedetect.core.checks import check_whole_number
    from aedetect.util.outdir import check_may_write

    if format_ not in FORMATS:
        raise ConfigError(f"--format: {format_!r} is not one of {', '.join(FORMATS)}")
    if opset is not None:
        check_whole_number("--opset", opset, MIN_OPSET)
        high = max_opset()
        if opset > high:
            raise ConfigError(f"--opset: {opset} is newer than this PyTorch's exporter writes ({MIN_OPSET}..{high})")
    check_whole_number("--margin", margin, 0)
    if margin > MAX_MARGIN:
        raise ConfigError(f"--margin: {margin} is more than {MAX_MARGIN} pixels")
    if not str(model).startswith("pretrained:"):
        check_may_write(out, [model])


def max_opset() -> int:
    """The newest opset this PyTorch's ONNX exporter knows (23 for 2.9 on; 20 if it cannot say)."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET

        return int(ONNX_MAX_OPSET)
    except (ImportError, AttributeError, ValueError):
        return 20


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
    from aedetect.core.modelfile.file import load_record, read_record
    from aedetect.core.modelfile.onnx import require_onnx

    check_export_options(model, out, format_, opset, margin)
    # The file's one read: metadata and limits, before anything is built or onnx imported; the
    # model is then built from that record.
    record = read_record(model)
    cfg = record.config
    if cfg.task == "anomaly":
        from aedetect.anomaly.jobs.export import check_exportable

        check_exportable(record.meta.get("calibration", {}), cfg, model)  # the map and every field the graph reads
    require_onnx()
    mf = load_record(record, device="cpu")
    if mf.config.task == "anomaly":
        from aedetect.anomaly.jobs.export import export_anomaly

        path = export_anomaly(mf, out, overwrite=overwrite, opset=opset)
    elif mf.config.task == "denoise":
        from aedetect.denoise.export import export_denoise

        path = export_denoise(mf, out, overwrite=overwrite, opset=opset, margin=margin)
    else:
        raise ExportError(f"{model}: task {mf.config.task!r} has no export")
    typer.echo(str(path))
