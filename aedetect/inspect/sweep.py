"""``aedetect sweep``: one architecture, several bottleneck sizes, one table and one plot.

Each point is a full ``fit`` run (its own folder with model file and metrics.json) of the
same preset/recipe with one change: the latent size (``--latent``: the last ``mlp_hidden``
width for the mlp arch, ``latent_dim`` for a dense bottleneck, ``latent_channels`` for a
convolutional one) or any config key (``--vary model.widths=[[16,8,8],[32,16,16]]``).
Writes sweep.csv (one row per point) and sweep.png (validation loss against compression
ratio = input values / code values, parameter counts annotated).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet
from aedetect.errors import ConfigError
from aedetect.util.csvsafe import SafeDictWriter
from aedetect.util.fsutil import new_run_dir, write_text_atomic
from aedetect.core.presets import build_config

log = logging.getLogger("aedetect")

COLUMNS = ("point", "parameters", "encoder_parameters", "decoder_parameters", "code_size", "input_size",
           "compression_ratio", "best_val_loss", "val_mse", "test_mse", "val_mse_unit", "test_mse_unit",
           "epochs_run", "best_epoch", "train_seconds", "run_dir")


@dataclass
class SweepPoint:
    """One run of the sweep: a label (folder name) and the config overrides it applies."""

    label: str
    overrides: dict[str, Any]


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def latent_points(base: Config, sizes: list[int]) -> list[SweepPoint]:
    """Latent-size points for the base config's kind of bottleneck."""
    m = base.model
    pts = []
    for n in sizes:
        if m.arch == "mlp":
            ov = {"model": {"mlp_hidden": [*m.mlp_hidden[:-1], n]}}
        elif m.bottleneck == "dense":
            ov = {"model": {"latent_dim": n}}
        else:
            ov = {"model": {"latent_channels": n}}
        pts.append(SweepPoint(f"latent{n}", ov))
    return pts


def vary_points(key: str, values: list[Any]) -> list[SweepPoint]:
    """Points setting one config key (dotted) to each value in turn."""
    short = key.split(".")[-1]
    return [SweepPoint(f"{short}=" + (json.dumps(v).replace(" ", "").strip('"')), _nest(key, v))
            for v in values]


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """'model.widths=[[16,8,8],[32,16,16]]' -> ('model.widths', [[16, 8, 8], [32, 16, 16]])."""
    if "=" not in text:
        raise ConfigError(f"--vary: {text!r} is not KEY=[v1,v2,...]")
    key, raw = text.split("=", 1)
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--vary: {raw!r} is not a JSON list ({e.msg})") from None
    if not isinstance(values, list) or not values:
        raise ConfigError(f"--vary: {raw!r} is not a non-empty JSON list")
    return key.strip(), values


def run_sweep(data: str | ImageSet, points: list[SweepPoint], out: str | Path | None = None, *,
              preset: str | None = None, recipe: str | Path | None = None,
              base_overrides: dict[str, Any] | None = None, data_root: str | None = None,
              normal_class: int | None = None, tensorboard: str | Path | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Fit every point into OUT/<label>/, then write OUT/sweep.csv and OUT/sweep.png."""
    from aedetect.core.config import deep_merge
    from aedetect.core.training.fit import fit
    from aedetect.core.model.codes import code_size

    if not points:
        raise ConfigError("sweep: no points (give --latent or --vary)")
    cfgs = [build_config(preset, recipe, deep_merge(copy.deepcopy(base_overrides or {}), copy.deepcopy(p.overrides)))
            for p in points]  # every config is validated before the first run starts
    root = new_run_dir(out, prefix="sweep")
    rows: list[dict[str, Any]] = []
    for i, (p, cfg) in enumerate(zip(points, cfgs)):
        log.info("sweep point %d/%d: %s", i + 1, len(points), p.label)
        o = fit(data, cfg, root / p.label, normal_class=normal_class, data_root=data_root,
                tensorboard=tensorboard, run_name=f"{root.name}-{p.label}", model_name=preset)
        metrics = json.loads((o.run_dir / "metrics.json").read_text())
        model = o.result.model
        shape = tuple(o.data.shape)
        code = code_size(model, shape)  # type: ignore[arg-type]
        n_in = math.prod(shape)
        r = o.result
        rows.append({"point": p.label, **model.parameter_counts(),  # type: ignore[operator]
                     "code_size": code, "input_size": n_in, "compression_ratio": round(n_in / code, 3),
                     "best_val_loss": r.best_val_loss, "val_mse": metrics["val_mse"], "test_mse": metrics["test_mse"],
                     "val_mse_unit": metrics["val_mse_unit"], "test_mse_unit": metrics["test_mse_unit"],
                     "epochs_run": len(r.history), "best_epoch": r.best_epoch,
                     "train_seconds": round(r.seconds, 1), "run_dir": str(o.run_dir)})
        write_sweep_csv(root / "sweep.csv", rows)  # after every point: a stopped sweep keeps its rows
    save_sweep_plot(rows, root / "sweep.png", title=f"{preset or 'custom'} on {data if isinstance(data, str) else 'ImageSet'}")
    return root, rows


def write_sweep_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = SafeDictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def save_sweep_plot(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Validation loss against compression ratio (log x), each point labelled with its size."""
    from aedetect.core.plots import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = sorted(rows, key=lambda r: r["compression_ratio"])  # a line left to right, whatever the sweep order
    xs = [r["compression_ratio"] for r in rows]
    ys = [r["best_val_loss"] for r in rows]
    ax.plot(xs, ys, "o-", ms=4)
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(f"{r['point']}\n{r['parameters']:,} params", (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    if all(y > 0 for y in ys):
        ax.set_yscale("log")
    ax.set_xlabel("compression ratio (input values / code values)")
    ax.set_ylabel("best validation loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)
