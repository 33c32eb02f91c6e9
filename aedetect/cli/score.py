"""``aedetect score MODEL DATA --out DIR``: scores, flags, heat maps and (with labels) metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from aedetect.cli.app import EXIT_FOUND, app, handle_errors
from aedetect.cli.params import (AbnormalDir, BatchSize, DataRoot, InferenceDevice, MaskDir, NormalDir,
                                  ShardOption, TestNormalClass)
from aedetect.util.progress import console, plain

if TYPE_CHECKING:
    from aedetect.anomaly.jobs.score import ScoreReport

METRIC_ROWS = (("image_auroc", "image AUROC"), ("image_ap", "image AP"),
               ("f1_at_threshold", "F1 at threshold"), ("best_f1", "best F1"),
               ("fpr_at_threshold", "FPR at threshold"), ("recall_at_threshold", "recall at threshold"),
               ("pixel_auroc", "pixel AUROC"), ("aupro", "AUPRO (FPR<=0.3)"))


@app.command()
@handle_errors
def score(
    model: Annotated[Path, typer.Argument(help="Anomaly model file written by `aedetect fit` (model.safetensors).")],
    data: Annotated[str, typer.Argument(help="Image folder (MVTec AD layout gives labels and masks), or mnist | fashion-mnist | cifar10 | digits with --normal-class.")],
    out: Annotated[Optional[Path], typer.Option(help="Folder to create for the results (default: a new runs/score-*).")] = None,
    normal_dir: NormalDir = None,
    abnormal_dir: AbnormalDir = None,
    mask_dir: MaskDir = None,
    normal_class: TestNormalClass = None,
    data_root: DataRoot = None,
    all_heatmaps: Annotated[bool, typer.Option("--all-heatmaps", help="Heat maps for every image, not only flagged ones.")] = False,
    heatmaps: Annotated[bool, typer.Option("--heatmaps/--no-heatmaps", help="Write heat-map PNGs.")] = True,
    fail_on_anomaly: Annotated[bool, typer.Option("--fail-on-anomaly", help="Exit with code 2 when any image is flagged.")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html: metrics, curves, per-kind table and a gallery sorted by score.")] = True,
    max_images: Annotated[Optional[int], typer.Option(help="Decode and score only the first N files (sorted order).")] = None,
    batch_size: BatchSize = 64,
    device: InferenceDevice = "auto",
    shard: ShardOption = None,
) -> None:
    """Score images with a calibrated anomaly model (higher score = more anomalous).

    Exit codes: 0 done; 1 error; 2 an image was flagged (with --fail-on-anomaly only);
    64 usage error.
    """
    from aedetect.anomaly.jobs.scoreopts import check_score_options

    # before torch is even imported:
    found = check_score_options(model, data, out, batch_size, max_images, (normal_dir, abnormal_dir, mask_dir))
    from aedetect.data.shard import resolve_shard

    part = resolve_shard(shard)
    from aedetect.anomaly.jobs.score import run_score  # the options above are not checked again

    rep = run_score(found, data, out, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
                     normal_class=normal_class, data_root=data_root, all_heatmaps=all_heatmaps,
                     heatmaps=heatmaps, batch_size=batch_size, device=device, max_images=max_images,
                     report=report, shard=part)
    print_report(rep)
    if fail_on_anomaly and rep.n_flagged:
        console.print(f"[bold yellow]{rep.n_flagged} image(s) flagged as anomalous[/]", highlight=False)
        raise typer.Exit(EXIT_FOUND)


def print_report(rep: "ScoreReport") -> None:
    """The summary table of a score (or merged) run, then the path of its scores.csv."""
    from rich.table import Table

    table = Table(title=f"aedetect score: {plain(rep.out)}", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("images scored", str(rep.n_images))
    table.add_row("flagged (score > threshold)", f"{rep.n_flagged} ({rep.n_flagged / max(rep.n_images, 1):.1%})")
    table.add_row("unreadable", str(rep.n_errors))
    table.add_row("threshold", f"{rep.threshold:.6g}")
    for key, name in METRIC_ROWS:
        if key in rep.metrics:
            table.add_row(name, f"{rep.metrics[key]:.4f}")
    table.add_row("heat maps", str(rep.heatmaps))
    if rep.report is not None:
        table.add_row("report", plain(rep.report))
    console.print(table)
    if rep.reliability:
        console.print(plain(rep.reliability), highlight=False)
    typer.echo(str(rep.out / "scores.csv"))
