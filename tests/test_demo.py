"""``aedetect demo --fast`` end to end (its own file: with ``--dist loadfile`` the suite's
longest test then runs beside the other CLI tests instead of after them)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aedetect.cli import app
from aedetect.core.modelfile.file import load_model

runner = CliRunner()


def test_demo_fast_runs_end_to_end(tmp_path: Path) -> None:
    r = runner.invoke(app, ["demo", "--fast", "--out", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "demo" / "anomaly" / "model.safetensors").is_file()
    # calibrated on crops of another band, which share no pixel with the training crops
    meta = load_model(tmp_path / "demo" / "anomaly" / "model.safetensors").metadata
    assert meta["calibration"]["overlap_with_training"]["images"] == 0
    assert meta["training"]["calib_images"] == meta["calibration"]["calib_images"] > 100
    assert "share most of their pixels" not in r.output
