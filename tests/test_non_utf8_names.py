"""File names that are not valid UTF-8 (issue 11, item 8): ``score`` and ``denoise --reference``
finish, and every CSV, JSON and log line holds the name with its odd byte as ``\\xNN``."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from conftest import untrained_model
from test_hostile_images import hf

from aedetect.cli import app
from aedetect.denoise.demo import noisy_version
from aedetect.util.text import printable

runner = CliRunner()


def _latin1_folder(root: Path) -> Path:
    """café.png (Latin-1 bytes), a plain PNG (both noisy camera crops), and an unreadable file
    with a Latin-1 name."""
    root.mkdir(parents=True)
    hf.latin1_named_png(root, image=noisy_version(hf.camera(), 20))
    Image.fromarray(noisy_version(hf.camera(left=180), 20, seed=1)).save(root / "plain.png")
    with open(os.path.join(os.fsencode(root), b"bad\xff.png"), "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\nnot an image")
    return root


def test_printable_keeps_the_byte_visible_and_valid_names_unchanged() -> None:
    assert printable(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert printable("café.png") == "café.png"
    printable(os.fsdecode(b"\xff\xfe")).encode("utf-8")  # always encodable


def test_score_with_a_latin1_file_name(model_file: Path, tmp_path: Path) -> None:
    folder = _latin1_folder(tmp_path / "in")
    out = tmp_path / "out"
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--out", str(out), "--all-heatmaps"])
    assert r.exit_code == 0, r.output
    assert r.exception is None
    text = (out / "scores.csv").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    rows = {Path(row["path"]).name: row for row in csv.DictReader(text.splitlines())}
    assert set(rows) == {"caf\\xe9.png", "plain.png", "bad\\xff.png"}
    assert rows["caf\\xe9.png"]["score"] and not rows["caf\\xe9.png"]["error"]
    assert rows["bad\\xff.png"]["error"] and not rows["bad\\xff.png"]["score"]
    assert len(list((out / "heatmaps").glob("*.png"))) == 2
    assert any(line.startswith("warning:") and "bad\\xff.png" in line for line in r.output.splitlines()), r.output


def test_denoise_reference_metrics_with_a_latin1_file_name(tmp_path: Path) -> None:
    src, ref = _latin1_folder(tmp_path / "in"), tmp_path / "clean"
    ref.mkdir()
    hf.latin1_named_png(ref)
    Image.fromarray(hf.camera(left=180)).save(ref / "plain.png")
    out = tmp_path / "out"
    r = runner.invoke(app, ["denoise", str(untrained_model(tmp_path / "m.safetensors")), str(src), "--out", str(out),
                            "--reference", str(ref)])
    assert r.exit_code == 2, r.output  # bad\xff.png failed, the other two done
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "done 2" in r.output and "failed 1" in r.output
    assert os.path.isfile(os.path.join(os.fsencode(out), b"caf\xe9.png"))  # the output keeps the real name
    text = (out / "denoise_metrics.csv").read_bytes().decode("utf-8")
    rows = {row["path"]: row for row in csv.DictReader(text.splitlines())}
    assert set(rows) == {"caf\\xe9.png", "plain.png", "mean"}
    assert float(rows["caf\\xe9.png"]["psnr_output"]) > 0


def test_fit_summary_lists_a_latin1_skipped_file(digit_folder: Path, tmp_path: Path) -> None:
    with open(os.path.join(os.fsencode(digit_folder), b"bad\xe9.png"), "wb") as fh:
        fh.write(b"garbage")
    r = runner.invoke(app, ["fit", str(digit_folder), "--preset", "small", "--epochs", "1", "--size", "16",
                            "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_bytes().decode("utf-8"))
    assert any(s["path"].endswith("bad\\xe9.png") for s in summary["skipped"])
