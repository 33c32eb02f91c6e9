"""One rule decides where a command may write: never an input, never inside an input tree
(issue 27, items 1 and 8, and export's --out)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import untrained_model

from aedetect.cli import app
from aedetect.errors import AedetectError
from aedetect.util.outdir import check_may_write

runner = CliRunner()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_denoise_out_that_holds_the_input_never_writes_over_an_input(tmp_path: Path) -> None:
    """``--out dp`` with the input ``dp/in`` maps ``dp/in/in/x.png`` onto the input ``dp/in/x.png``."""
    model = untrained_model(tmp_path / "m.safetensors")
    dp = tmp_path / "dp"
    (dp / "in" / "in").mkdir(parents=True)
    Image.fromarray(np.full((16, 16), 10, np.uint8)).save(dp / "in" / "x.png")
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(dp / "in" / "in" / "x.png")
    before = {p: _sha(p) for p in dp.rglob("*.png")}
    r = runner.invoke(app, ["denoise", str(model), str(dp / "in"), "--out", str(dp), "--overwrite"])
    assert r.exit_code == 1 and "inside the input" in r.output and "\n" not in r.output.strip(), r.output
    assert {p: _sha(p) for p in dp.rglob("*.png")} == before
    assert sorted(p.name for p in dp.rglob("*")) == ["in", "in", "x.png", "x.png"]  # no temporaries either


def test_the_rule_sees_parents_symlinks_and_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.png").write_bytes(b"x")
    (tmp_path / "link").symlink_to(data)
    for bad in (data, data / "sub" / "o.csv", tmp_path / "link" / "new", data / "a.png"):
        with pytest.raises(AedetectError, match="inside the input"):
            check_may_write(bad, [data])
    check_may_write(tmp_path / "out", [data, "digits"])  # outside, and a dataset by name holds nothing
    with pytest.raises(AedetectError, match="inside the input"):
        check_may_write(data / "a.png", [data / "a.png"])  # an input file itself


def test_fit_out_inside_data_is_refused_before_training(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16), 20 * i, np.uint8)).save(data / f"d{i}.png")
    r = runner.invoke(app, ["fit", str(data), "--preset", "small", "--epochs", "1", "--size", "16",
                            "--out", str(data / "run1")])
    assert r.exit_code == 1 and "inside the input" in r.output, r.output
    assert sorted(p.name for p in data.iterdir()) == [f"d{i}.png" for i in range(4)]


def test_score_out_inside_normal_dir_is_refused(tmp_path: Path) -> None:
    normal, abnormal = tmp_path / "good", tmp_path / "bad"
    for d in (normal, abnormal):
        d.mkdir()
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(d / "a.png")
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["score", str(model), str(tmp_path / "x"), "--normal-dir", str(normal),
                            "--abnormal-dir", str(abnormal), "--out", str(normal / "run")])
    assert r.exit_code == 1 and "inside the input" in r.output, r.output
    assert not (normal / "run").exists()
