"""``aedetect calibrate MODEL DATA --out NEW_MODEL``: re-set the flag threshold on labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.cli.params import (AbnormalDir, BatchSize, DataRoot, InferenceDevice, MaskDir, NormalDir,
                                  TestNormalClass)
from aedetect.util.progress import console, plain


def _num(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


@app.command()
@handle_errors
def calibrate(
    model: Annotated[Path, typer.Argument(help="Anomaly model file written by `aedetect fit` (left unchanged).")],
    data: Annotated[str, typer.Argument(help="Labelled validation images, as for `aedetect score`: MVTec AD folder, --normal-dir/--abnormal-dir, or mnist | fashion-mnist | cifar10 | digits with --normal-class.")],
    out: Annotated[Path, typer.Option(help="New model file to write (must not exist).")],
    rule: Annotated[str, typer.Option(help="f1: the F1-optimal threshold on DATA (needs both classes); fpr: the threshold for --target-fpr on DATA's normal images.")] = "f1",
    target_fpr: Annotated[float, typer.Option(help="False-positive rate on normal images for --rule fpr.")] = 0.01,
    normal_dir: NormalDir = None,
    abnormal_dir: AbnormalDir = None,
    mask_dir: MaskDir = None,
    normal_class: TestNormalClass = None,
    data_root: DataRoot = None,
    batch_size: BatchSize = 64,
    device: InferenceDevice = "auto",
) -> None:
    """Re-set an anomaly model's threshold on labelled data (F1-optimal or a target FPR); writes a new model file."""
    from aedetect.anomaly.jobs.scoreopts import check_calibrate_options

    found = check_calibrate_options(model, out, rule, target_fpr, batch_size)  # before torch is imported
    from rich.table import Table

    from aedetect.anomaly.jobs.calibrate import recalibrate

    rep = recalibrate(found, data, out, rule=rule, target_fpr=target_fpr, normal_dir=normal_dir,
                      abnormal_dir=abnormal_dir, mask_dir=mask_dir, normal_class=normal_class,
                      data_root=data_root, batch_size=batch_size, device=device)
    table = Table(title=f"aedetect calibrate: {plain(rep.out)}", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("old", justify="right")
    table.add_column("new", justify="right")
    table.add_row("images in DATA (normal / anomalous)", f"{rep.n_normal} / {rep.n_anomalous}", "")
    table.add_row("rule", plain(rep.calibration.get("previous_threshold_rule")), plain(rep.rule))
    table.add_row("threshold", f"{rep.old_threshold:.6g}", f"{rep.new_threshold:.6g}")
    table.add_row("F1 on DATA", _num(rep.old_f1, ".4f"), _num(rep.new_f1, ".4f"))
    table.add_row("FPR on DATA's normals", f"{rep.old_fpr:.4f}", f"{rep.new_fpr:.4f}")
    table.add_row("pixel threshold", f"{rep.old_pixel_threshold:.6g}", f"{rep.new_pixel_threshold:.6g}")
    if rep.new_pixel_f1 is not None:
        table.add_row("pixel F1 on DATA", _num(rep.old_pixel_f1, ".4f"), _num(rep.new_pixel_f1, ".4f"))
    console.print(table)
    typer.echo(str(rep.out))
