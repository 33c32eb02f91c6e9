"""``aedetect denoise MODEL INPUT --out OUTDIR``: clean a file or a whole folder tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.cli.app import EXIT_ERROR, EXIT_FOUND, app, handle_errors
from aedetect.cli.params import ShardOption
from aedetect.util.progress import console, plain
from aedetect.denoise.settings import DEFAULT_MAX_PIXELS, DEFAULT_OVERLAP


@app.command()
@handle_errors
def denoise(
    model: Annotated[str, typer.Argument(help="A model file trained with `aedetect fit --task denoise`, or a shipped one: pretrained (gray files to pretrained:gray, colour files to pretrained:rgb), pretrained:gray, pretrained:rgb.")],
    input: Annotated[Path, typer.Argument(help="An image file or a folder (searched recursively).")],
    out: Annotated[Path, typer.Option(help="Output folder; mirrors the input tree with the same names and formats.")],
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that already exist (default: skip them, so a re-run resumes) and an existing --csv file (default: refused).")] = False,
    reference: Annotated[Optional[Path], typer.Option(help="Folder of clean images at the same relative paths: report PSNR and SSIM.")] = None,
    csv: Annotated[Optional[Path], typer.Option(help="Where to write the --reference metrics (default OUT/denoise_metrics.csv).")] = None,
    max_tile_pixels: Annotated[int, typer.Option(help="Memory budget: larger images are denoised in overlapping tiles of about this many pixels.")] = DEFAULT_MAX_PIXELS,
    overlap: Annotated[int, typer.Option(help="Tile overlap in pixels (blended with a linear ramp).")] = DEFAULT_OVERLAP,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    sigma: Annotated[str, typer.Option(help="Noise level on the 0..255 scale for a model with a noise-level input (the shipped ones), or 'auto': estimated per image.")] = "auto",
    ensemble: Annotated[int, typer.Option(help="Average the outputs of this many flips/turns of each image: 1, 2, 4 or 8 (n times the time; slightly better).")] = 1,
    shard: ShardOption = None,
) -> None:
    """Denoise images; inputs are never written, outputs are written atomically.

    Exit codes: 0 done (or skipped: outputs exist); 1 error, or every file failed; 2 some
    files failed, the others done; 64 usage error.
    """
    from aedetect.core.checks import check_model_path
    from aedetect.denoise.settings import check_tiling
    from aedetect.util.outdir import check_not_inside

    from aedetect.denoise.settings import check_ensemble, parse_sigma

    check_tiling(max_tile_pixels, overlap)  # usage errors before torch is imported
    level = parse_sigma(sigma)
    check_ensemble(ensemble)
    found = check_model_path(model)  # the name looked up once, passed on
    check_not_inside(out, input)
    if out.exists() and not out.is_dir():
        from aedetect.errors import OutputPathError

        raise OutputPathError(f"--out {out}: is a file, not a folder; choose a folder")
    from aedetect.denoise.denoiser import Denoiser
    from aedetect.denoise.folder import denoise_path

    from aedetect.data.shard import resolve_shard

    part = resolve_shard(shard)
    den = Denoiser.load(found, device=device, max_tile_pixels=max_tile_pixels, overlap=overlap, sigma=level,
                        ensemble=ensemble)
    if level != "auto" and not den.takes_sigma:
        import logging

        logging.getLogger("aedetect").warning("--sigma %g: this model has no noise-level input (it was trained "
                                              "for %s); the level is not used", level,
                                              den.config.denoise.get("level", "its recipe's levels"))
    rep = denoise_path(den, input, out, overwrite=overwrite, reference=reference, csv_path=csv, shard=part)
    if rep.metrics:
        from rich.table import Table

        t = Table(title="PSNR / SSIM against --reference")
        for col in ("image", "PSNR in", "PSNR out", "SSIM in", "SSIM out"):
            t.add_column(col, justify="left" if col == "image" else "right")

        def f(v: object, nd: int) -> str:
            return f"{v:.{nd}f}" if isinstance(v, float) else "-"

        rows = rep.metrics if len(rep.metrics) <= 200 else []
        for m in rows:
            t.add_row(plain(m["path"]), f(m.get("psnr_input"), 2), f(m.get("psnr_output"), 2),
                      f(m.get("ssim_input"), 4), f(m.get("ssim_output"), 4))
        t.add_row("[bold]mean[/]", f(rep.mean("psnr_input"), 2), f(rep.mean("psnr_output"), 2),
                  f(rep.mean("ssim_input"), 4), f(rep.mean("ssim_output"), 4))
        console.print(t)
        console.print(f"metrics: {plain(rep.csv_path)}", highlight=False)
    n = len(rep.done) + len(rep.skipped) + len(rep.failed)
    console.print(f"[green]done[/] {len(rep.done)}, skipped {len(rep.skipped)} (output exists; --overwrite to redo), "
                  f"[{'red' if rep.failed else 'green'}]failed {len(rep.failed)}[/] of {n} in {rep.seconds:.1f} s",
                  highlight=False)
    for rel, why in rep.failed:
        console.print(f"  failed {plain(rel)}: {plain(why)}", highlight=False)
    typer.echo(str(out))
    if rep.failed:
        raise typer.Exit(EXIT_FOUND if rep.done or rep.skipped else EXIT_ERROR)
