"""``aedetect inspect MODEL [DATA] --out DIR``: pictures of what a model learned."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.util.progress import console, plain


@app.command()
@handle_errors
def inspect(
    model: Annotated[Path, typer.Argument(help="A model file (.safetensors) written by aedetect fit.")],
    data: Annotated[Optional[str], typer.Argument(help="Images to look at: a folder or mnist | fashion-mnist | cifar10 | digits | texture:NAME. Default: the model's training data, if built in.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder to create for the PNGs and index.html (must be new or empty). Default: a new runs/inspect-*.")] = None,
    index: Annotated[int, typer.Option(help="Image whose activations are shown (and first end of the interpolation).")] = 0,
    index_b: Annotated[Optional[int], typer.Option(help="Other end of the interpolation (default: the next image of another class).")] = None,
    steps: Annotated[int, typer.Option(help="Interpolation steps, ends included.")] = 16,
    images: Annotated[int, typer.Option(help="Images in the inputs-over-reconstructions grid.")] = 8,
    tsne: Annotated[bool, typer.Option(help="2-D map by t-SNE instead of PCA (slower).")] = False,
    max_points: Annotated[int, typer.Option(help="At most this many images in the 2-D map (a seeded random sample).")] = 2000,
    data_root: Annotated[Optional[str], typer.Option(help="Where datasets by name live.")] = None,
) -> None:
    """Filters, activations, reconstructions, latent interpolation and a latent map, in one folder."""
    from aedetect.inspect import inspect_model

    from aedetect.core.checks import check_whole_number
    from aedetect.inspect.report import MIN_MAP_POINTS

    check_whole_number("--steps", steps, 2)  # the two ends
    check_whole_number("--images", images, 1)
    check_whole_number("--max-points", max_points, MIN_MAP_POINTS)
    res = inspect_model(model, data, out, index=index, index_b=index_b, steps=steps, n_images=images,
                        tsne=tsne, max_points=max_points, data_root=data_root)
    for p in res.pictures:
        if p.skipped:
            console.print(f"[yellow]{plain(p.name)}[/]: {plain(p.skipped)}", highlight=False)
    console.print(f"[green]wrote[/] {len(res.files())} pictures and index.html", highlight=False)
    typer.echo(str(res.out / "index.html"))
