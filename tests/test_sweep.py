"""aedetect sweep: one row per bottleneck size with a finite loss, table and plot written."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aedetect.cli import app
from aedetect.core.config import DataConfig
from aedetect.data.sources import load_digits
from aedetect.errors import ConfigError
from aedetect.core.presets import build_config
from aedetect.inspect.sweep import latent_points, parse_vary, run_sweep, vary_points

BASE = {"data": {"size": [8, 8]}, "train": {"epochs": 1, "device": "cpu", "batch_size": 64}}


def test_mlp_latent_sweep_one_row_per_size(tmp_path: Path) -> None:
    data = load_digits(DataConfig(channels=1, size=(8, 8))).subset(list(range(300)))
    base = {**BASE, "model": {"mlp_hidden": [32, 16]}}
    points = latent_points(build_config("mlp", overrides=base), [16, 8, 4])
    assert [p.overrides["model"]["mlp_hidden"] for p in points] == [[32, 16], [32, 8], [32, 4]]
    root, rows = run_sweep(data, points, tmp_path / "sw", preset="mlp", base_overrides=base)
    assert [r["point"] for r in rows] == ["latent16", "latent8", "latent4"]
    assert [r["compression_ratio"] for r in rows] == [4.0, 8.0, 16.0]
    assert all(math.isfinite(r["best_val_loss"]) and r["best_val_loss"] > 0 for r in rows)
    # 64-32-L-32-64: parameters fall by 2 * 33 per unit of latent size removed (both sides)
    params = [r["parameters"] for r in rows]
    assert params[0] - params[1] == 8 * (32 + 1) + 8 * 32 and params[1] > params[2]
    with (root / "sweep.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 3 and all(math.isfinite(float(t["val_mse"])) for t in table)
    assert (root / "sweep.png").stat().st_size > 1000
    assert all((root / p.label / "metrics.json").is_file() for p in points)


def test_cli_sweep_conv_widths(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["sweep", "digits", "--preset", "small", "--vary", "model.widths=[[4],[8]]",
                                 "--set", "data.size=[8,8]", "--epochs", "1", "--max-images", "200",
                                 "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    with (tmp_path / "c" / "sweep.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [t["point"] for t in table] == ["widths=[4]", "widths=[8]"]
    # one max-pool level: an 8x8 image -> 4x4 code of 4 or 8 channels
    assert [int(t["code_size"]) for t in table] == [64, 128]
    assert all(math.isfinite(float(t["best_val_loss"])) for t in table)


def test_sweep_argument_errors() -> None:
    assert parse_vary("model.latent_dim=[10,20]") == ("model.latent_dim", [10, 20])
    with pytest.raises(ConfigError):
        parse_vary("model.latent_dim=10")
    assert [p.label for p in vary_points("train.weight_decay", [0, 1e-5])] == ["weight_decay=0", "weight_decay=1e-05"]
    r = CliRunner().invoke(app, ["sweep", "digits", "--preset", "small"])
    assert r.exit_code == 64 and "--latent or --vary" in r.output
