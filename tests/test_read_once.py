"""Each command reads its model file once and looks a ``pretrained:NAME`` up once (issue 26).

A read is counted where the file is opened: the header (aedetect.core.modelfile.file.read_header,
which read_record calls) and the tensors (``_load_tensors``). A look-up is counted where a shipped
name becomes a file (aedetect.core.pretrained.shipped_file). Before this, ``calibrate`` and
``export`` read the header twice, and every command looked ``pretrained:NAME`` up twice or three
times (the CLI's check, then each read).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import aedetect.core.modelfile.file as modelfile
import aedetect.core.pretrained as pretrained
from aedetect.cli import app

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
ANOMALY = LEGACY / "anomaly-digits.safetensors"
runner = CliRunner()


@pytest.fixture()
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, Path]]:
    """("header" | "tensors", resolved path) -> how many times the file was opened for it."""
    seen: Counter[tuple[str, Path]] = Counter()
    header, tensors = modelfile.read_header, modelfile._load_tensors

    def count_header(path: Path) -> Any:
        seen["header", Path(path).resolve()] += 1
        return header(path)

    def count_tensors(path: Path) -> Any:
        seen["tensors", Path(path).resolve()] += 1
        return tensors(path)

    monkeypatch.setattr(modelfile, "read_header", count_header)
    monkeypatch.setattr(modelfile, "_load_tensors", count_tensors)
    return seen


@pytest.fixture()
def lookups(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Shipped model name -> how many times it was looked up."""
    seen: Counter[str] = Counter()
    find = pretrained.shipped_file

    def count(name: str) -> Path:
        seen[name] += 1
        return find(name)

    monkeypatch.setattr(pretrained, "shipped_file", count)
    return seen


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """Two small noisy 8-bit files, one gray and one colour (the pair sends each to its model)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / "g.png")
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / "c.png")
    return folder


def _once(reads: Counter[tuple[str, Path]], path: Path) -> None:
    p = path.resolve()
    assert reads["header", p] == 1 and reads["tensors", p] == 1, dict(reads)


def test_score_reads_the_model_file_once(reads: Counter[tuple[str, Path]], tmp_path: Path) -> None:
    r = runner.invoke(app, ["score", str(ANOMALY), "digits", "--normal-class", "0", "--max-images", "40",
                            "--out", str(tmp_path / "s"), "--no-report", "--no-heatmaps"])
    assert r.exit_code == 0, r.output
    _once(reads, ANOMALY)


def test_calibrate_reads_the_model_file_once(reads: Counter[tuple[str, Path]], tmp_path: Path) -> None:
    out = tmp_path / "new.safetensors"
    r = runner.invoke(app, ["calibrate", str(ANOMALY), "digits", "--normal-class", "0", "--rule", "f1",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    _once(reads, ANOMALY)
    assert reads["tensors", out.resolve()] == 0  # the new file is read back once as it is written, not loaded


def test_export_reads_the_model_file_once(reads: Counter[tuple[str, Path]], tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    r = runner.invoke(app, ["export", str(ANOMALY), "--out", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    _once(reads, ANOMALY)


def test_denoise_reads_each_model_file_once(reads: Counter[tuple[str, Path]], lookups: Counter[str],
                                            photos: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["denoise", "pretrained", str(photos), "--out", str(tmp_path / "o"), "--sigma", "25"])
    assert r.exit_code == 0, r.output
    for name in pretrained.BY_MODE_NAMES:
        _once(reads, pretrained.FOLDER / f"{name}.safetensors")
    assert lookups == Counter({n: 1 for n in pretrained.BY_MODE_NAMES})  # the pair: each looked up once


@pytest.mark.parametrize("command", [
    ["denoise", "pretrained:gray", "{photos}", "--out", "{tmp}/o", "--sigma", "25"],
    ["export", "pretrained:gray", "--out", "{tmp}/g.onnx"],
    ["score", "pretrained:gray", "{photos}", "--out", "{tmp}/s"],  # refused: not an anomaly model
    ["calibrate", "pretrained:gray", "{photos}", "--rule", "fpr", "--out", "{tmp}/c.safetensors"],  # likewise
    ["info", "pretrained:gray"],
])
def test_a_pretrained_name_is_looked_up_once_per_command(command: list[str], lookups: Counter[str],
                                                         photos: Path, tmp_path: Path) -> None:
    if command[0] == "export":
        pytest.importorskip("onnx")
    args = [a.format(photos=photos, tmp=tmp_path) for a in command]
    r = runner.invoke(app, args)
    refused = command[0] in ("score", "calibrate")
    assert (r.exit_code == 1 and "pretrained:gray: not a calibrated anomaly model" in r.output) if refused \
        else r.exit_code == 0, r.output
    assert lookups == Counter({"gray": 1})
