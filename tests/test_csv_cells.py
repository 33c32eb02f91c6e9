"""CSV cells that a spreadsheet would run as formulas are neutralised; numbers stay numbers
(issue 27, item 5)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from conftest import untrained_model

from aedetect.cli import app
from aedetect.util.csvsafe import SafeDictWriter, SafeWriter, safe_cell

runner = CliRunner()
HOSTILE = ['=HYPERLINK("http:x","click").png', "+1+2.png", "-cmd.png", "@SUM(A1).png", "\tx.png", "\rx.png"]


def test_formula_cells_get_a_quote_and_numbers_do_not() -> None:
    for text in HOSTILE + ["=cmd|' -c calc'!A0"]:
        assert safe_cell(text) == "'" + text
    for keep in ("-0.5", "-1.2e-05", "+3", "0.25", "a=b.png", "data/x.png", "", -0.5, 3, None):
        assert safe_cell(keep) == keep
    assert safe_cell("-inf") == "'-inf" and safe_cell("-1e5x") == "'-1e5x"
    buf = io.StringIO()
    SafeWriter(buf).writerow(["=1+1", -0.25, "-0.25"])
    SafeDictWriter(buf, fieldnames=["a"]).writerows([{"a": "@x"}])
    assert buf.getvalue().splitlines() == ["'=1+1,-0.25,-0.25", "'@x"]


def test_scores_csv_neutralises_file_names_and_defect_kinds(tmp_path: Path, model_file: Path,
                                                            digits_uint8) -> None:  # type: ignore[no-untyped-def]
    """An MVTec layout whose defect folder is named like a command, and formula file names."""
    images, _ = digits_uint8
    cat = tmp_path / "cat"
    kind = "=cmd|' -c calc'!A0"
    for sub, names in (("test/good", ["0.png"]), (f"test/{kind}", HOSTILE), ("train/good", ["t.png"])):
        (cat / sub).mkdir(parents=True)
        for i, n in enumerate(names):
            Image.fromarray(images[i]).resize((16, 16), Image.NEAREST).save(cat / sub / n)
    out = tmp_path / "out"
    r = runner.invoke(app, ["score", str(model_file), str(cat), "--out", str(out), "--no-report"])
    assert r.exit_code == 0, r.output
    with (out / "scores.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert len(rows) == 1 + len(HOSTILE)
    for row in rows:
        assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in row), row
        assert not row[0].startswith("-") and float(row[1]) == float(row[1])  # the score is a plain number
    assert sum(row[5] == "'" + kind for row in rows) == len(HOSTILE)


def test_denoise_metrics_csv_neutralises_file_names(tmp_path: Path) -> None:
    src, ref = tmp_path / "in", tmp_path / "ref"
    src.mkdir()
    ref.mkdir()
    name = '=HYPERLINK("http:x","click").png'
    for d in (src, ref):
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(d / name)
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(tmp_path / "out"), "--reference", str(ref)])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "out" / "denoise_metrics.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1][0] == "'" + name and all(not c.startswith("=") for row in rows for c in row)


def test_scores_csv_neutralises_relative_file_names(tmp_path: Path, model_file: Path, digits_uint8,  # type: ignore[no-untyped-def]
                                                    monkeypatch) -> None:  # type: ignore[no-untyped-def]
    images, _ = digits_uint8
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, n in enumerate(HOSTILE):
        Image.fromarray(images[i]).resize((16, 16), Image.NEAREST).save(flat / n)
    monkeypatch.chdir(flat)
    r = runner.invoke(app, ["score", str(model_file), ".", "--out", str(tmp_path / "out"), "--no-report"])
    assert r.exit_code == 0, r.output
    with (tmp_path / "out" / "scores.csv").open(encoding="utf-8", newline="") as fh:
        paths = [row[0] for row in list(csv.reader(fh))[1:]]
    assert sorted(paths) == sorted("'" + n for n in HOSTILE)
