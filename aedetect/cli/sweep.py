"""``aedetect sweep DATA``: train one architecture at several bottleneck sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.core.config import deep_merge
from aedetect.cli.options import parse_sets, prune_none
from aedetect.util.progress import console, plain


@app.command()
@handle_errors
def sweep(
    data: Annotated[str, typer.Argument(help="Image folder, or mnist | fashion-mnist | cifar10 | digits | texture:NAME.")],
    preset: Annotated[Optional[str], typer.Option(help="Architecture to sweep (see aedetect info PRESET).")] = None,
    recipe: Annotated[Optional[Path], typer.Option(help="Recipe TOML file; CLI options override it.")] = None,
    latent: Annotated[Optional[str], typer.Option(help="Latent sizes, e.g. 784,500,300,200,100 (mlp: last hidden width; dense: latent_dim; conv: latent_channels).")] = None,
    vary: Annotated[Optional[str], typer.Option(help="Any config key and a JSON list of values, e.g. 'model.widths=[[16,8,8],[32,16,16]]'.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder to create (default: a new runs/sweep-*).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per point.")] = None,
    max_images: Annotated[Optional[int], typer.Option(help="Use at most this many training images.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per step.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
    normal_class: Annotated[Optional[int], typer.Option(help="For datasets by name: train on this class only.")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="Where datasets by name live.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any config key for every point (repeatable).")] = None,
    tensorboard: Annotated[bool, typer.Option(help="Also log every point to TensorBoard under runs/<preset>/.")] = False,
) -> None:
    """Train one architecture at several bottleneck sizes; writes OUT/sweep.csv and OUT/sweep.png."""
    from aedetect.errors import ConfigError
    from aedetect.core.presets import build_config
    from aedetect.inspect.sweep import latent_points, parse_vary, run_sweep, vary_points

    base = deep_merge(prune_none({"train": {"epochs": epochs, "max_images": max_images, "batch_size": batch_size,
                                       "device": device}}), parse_sets(set_))
    if (latent is None) == (vary is None):
        raise ConfigError("sweep: give exactly one of --latent or --vary")
    if latent is not None:
        try:
            sizes = [int(s) for s in latent.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--latent: {latent!r} is not a comma-separated list of integers") from None
        points = latent_points(build_config(preset, recipe, base), sizes)
    else:
        points = vary_points(*parse_vary(vary))  # type: ignore[arg-type]
    root, rows = run_sweep(data, points, out, preset=preset, recipe=recipe, base_overrides=base,
                           data_root=data_root, normal_class=normal_class,
                           tensorboard=Path("runs") if tensorboard else None)
    for r in rows:
        point = plain(f"{r['point']:>16}")  # a label such as model.widths=[16,32]: text, not markup
        console.print(f"{point}  {r['parameters']:>10,} params  ratio {r['compression_ratio']:>8.2f}  "
                      f"val loss {r['best_val_loss']:.5f}", highlight=False)
    typer.echo(str(root / "sweep.csv"))
