"""``aedetect fit DATA``: train a model and write one run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.errors import ConfigError

from aedetect.cli.app import app, handle_errors
from aedetect.core.config import deep_merge
from aedetect.cli.options import parse_json, parse_sets, parse_size, prune_none
from aedetect.util.progress import console
from aedetect.util.launch import is_secondary_rank


@app.command()
@handle_errors
def fit(
    data: Annotated[str, typer.Argument(help="Image folder (MVTec AD layout recognised), or mnist | fashion-mnist | cifar10 | digits | texture:NAME.")],
    task: Annotated[Optional[str], typer.Option(help="anomaly (train on normal images) or denoise (clean images + synthetic noise).")] = None,
    preset: Annotated[Optional[str], typer.Option(help="Named architecture: default, keras-dogs, single-layer, cifar-linear, estimator, mlp, small.")] = None,
    recipe: Annotated[Optional[Path], typer.Option(help="Recipe TOML file (see recipes/); CLI options override it.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run folder to create (must be new or empty). Default: a new folder under runs/.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum number of epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per optimisation step.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda or mps.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for weights, split and shuffling.")] = None,
    normal_class: Annotated[Optional[int], typer.Option(help="For datasets by name: train on this class only.")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="Where datasets by name live (default $AEDETECT_DATA_ROOT or ~/.cache/aedetect/datasets).")] = None,
    size: Annotated[Optional[str], typer.Option(help="Image size N or HxW the images are brought to.")] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 (grayscale) or 3 (RGB); inputs are converted.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam, adamw, sgd or rmsprop.")] = None,
    optimizer_args: Annotated[Optional[str], typer.Option(help='Extra optimizer arguments as JSON, e.g. \'{"lr": 1e-3, "betas": [0.9, 0.99]}\'.')] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay / L2 penalty.")] = None,
    loss: Annotated[Optional[str], typer.Option(help="mse, l1, bce, ssim, l1+ssim or mse+ssim.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early stopping: epochs without validation improvement.")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Fraction of images held out for validation.")] = None,
    max_images: Annotated[Optional[int], typer.Option(help="Use at most this many images.")] = None,
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")] = None,
    time_budget: Annotated[Optional[float], typer.Option(help="Seconds of training after which no new epoch starts (the best epoch so far is kept); 0 = none. Anomaly models: where not given, 120 s on a CPU and 600 s on a GPU, and the autoencoder trains only where 3 epochs fit it (docs/anomaly.md: ImageNet features first).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any config key, e.g. --set model.widths=[16,32] (repeatable).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the interrupted run in this folder.")] = None,
    calibration: Annotated[Optional[str], typer.Option(help="Anomaly: a folder of separate normal images to choose the scoring and set the threshold on (default: 15 % of DATA). Use it when DATA is overlapping crops of one picture.")] = None,
    init: Annotated[Optional[str], typer.Option(help="Start from this model file's weights and architecture (fine-tuning), e.g. pretrained:gray.")] = None,
    tensorboard: Annotated[bool, typer.Option(help="Log losses, reconstructions and latent codes for TensorBoard under --tensorboard-dir/<model>/<run-name>/.")] = False,
    tensorboard_dir: Annotated[Path, typer.Option(help="Root folder of TensorBoard runs (view with: tensorboard --logdir DIR).")] = Path("runs"),
    run_name: Annotated[Optional[str], typer.Option(help="TensorBoard run name (default: the run folder's name).")] = None,
    noise: Annotated[Optional[list[str]], typer.Option(help="Denoise: noise kind(s) to train on: gaussian, shot, speckle, salt_pepper, jpeg (repeatable).")] = None,
    noise_level: Annotated[Optional[str], typer.Option(help="Denoise: LEVEL (fixed) or LOW:HIGH (blind), e.g. 5:50 for Gaussian sigma on 0..255.")] = None,
) -> None:
    """Train on normal (anomaly) or clean (denoise) images; writes RUN_DIR/model.safetensors."""
    from aedetect.core.training.fit import fit as run_fit
    from aedetect.core.training.fit import resume_config
    from aedetect.core.presets import build_config
    from aedetect.core.config import apply_overrides

    overrides = prune_none({
        "task": task,
        "data": {"size": parse_size(size), "channels": channels},
        "train": {"epochs": epochs, "batch_size": batch_size, "device": device, "seed": seed, "lr": lr,
                  "optimizer": optimizer, "optimizer_args": parse_json("--optimizer-args", optimizer_args),
                  "weight_decay": weight_decay, "loss": loss, "patience": patience,
                  "val_fraction": val_fraction, "max_images": max_images, "amp": amp,
                  "time_budget": time_budget},
    })
    if noise or noise_level:  # the denoise recipe (see aedetect.denoise.noise); --set denoise.KEY=... also works
        from aedetect.denoise.noise import parse_level

        overrides["denoise"] = prune_none({"noise": (noise[0] if len(noise) == 1 else noise) if noise else None,
                                           "level": parse_level(noise_level) if noise_level else None})
    overrides = deep_merge(overrides, parse_sets(set_))
    if resume is not None:
        from aedetect.core.checks import check_resume_data
        from aedetect.core.heads import validate

        check_resume_data(resume, data)  # a finished run is not trained on on other images
        cfg = resume_config(resume)
        apply_overrides(cfg, {"train": overrides.get("train", {})})
        validate(cfg)
    else:
        if preset is None and recipe is None and overrides.get("task") == "denoise":
            preset = "denoise-unet"
        cfg = build_config(preset, recipe, overrides)
    if init is not None and resume is not None:
        raise ConfigError("--init: a resumed run continues from its checkpoint; give --init or --resume, not both")
    check_run_outside_data(out if resume is None else resume, data, calibration)
    output = run_fit(data, cfg, out, normal_class=normal_class, data_root=data_root, resume=resume, init=init,
                     calibration=calibration,
                     tensorboard=tensorboard_dir if tensorboard else None, run_name=run_name,
                     model_name=preset or (recipe.stem if recipe else None))
    if is_secondary_rank():
        return  # torchrun: rank 0 prints the result
    r = output.result
    skipped = len(output.data.skipped)
    sources = getattr(output.data, "sources", None)
    what = f"{len(output.data)} images" if sources is None else (
        f"{r.extra.get('images_seen', 0):,} crops of {len(sources)} images")
    console.print(
        f"[green]trained[/] {len(r.history)} epochs on {what}"
        + (f" ({skipped} unreadable skipped)" if skipped else "")
        + f", best val loss {r.best_val_loss:.5f} at epoch {r.best_epoch}, "
        f"{r.seconds:.1f} s on {r.device}")
    typer.echo(str(output.model_path))


def check_run_outside_data(out: Path | None, data: str, calibration: str | None) -> None:
    """The run folder (``--out``, or the default ``runs/`` of the working folder) must lie
    outside DATA and the calibration folder: the next fit on DATA would train on the run's
    PNGs (reconstructions, loss curves) as if they were images of the data."""
    from aedetect.util.outdir import check_may_write

    check_may_write(out if out is not None else Path("runs"), [data, *([calibration] if calibration else [])],
                    "--out" if out is not None else "--out (default runs/)")
