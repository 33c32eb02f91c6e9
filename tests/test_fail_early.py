"""A run that cannot succeed is refused before any image is decoded; ``--max-images N`` decodes N.

Decoding is counted by wrapping ``read_image`` where the folder readers call it (fit:
``aedetect.data.sources``, score: ``aedetect.data.labelled``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aedetect.cli import app

runner = CliRunner()


@pytest.fixture()
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file decoded by fit's or score's folder readers, in order."""
    from aedetect.data import labelled, sources

    seen: list[str] = []
    real = sources.read_image

    def counting(path, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(sources, "read_image", counting)
    monkeypatch.setattr(labelled, "read_image", counting)
    return seen


@pytest.fixture()
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without CUDA, whatever it has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _folder(root: Path, n: int, digits_uint8) -> Path:  # type: ignore[no-untyped-def]
    images, _ = digits_uint8
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(images[i]).resize((16, 16), Image.NEAREST).save(root / f"d{i:03d}.png")
    return root


def test_device_cuda_without_cuda_fails_before_decoding(tmp_path: Path, digits_uint8, model_file: Path,  # type: ignore[no-untyped-def]
                                                        decoded: list[str], no_cuda: None) -> None:
    folder = _folder(tmp_path / "in", 60, digits_uint8)
    r = runner.invoke(app, ["fit", str(folder), "--device", "cuda", "--out", str(tmp_path / "run"), "--epochs", "1"])
    assert r.exit_code == 64 and "no CUDA device" in r.output, r.output
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--device", "cuda", "--out", str(tmp_path / "s")])
    assert r.exit_code == 64 and "no CUDA device" in r.output, r.output
    assert decoded == [] and not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


def test_bad_options_fail_before_decoding(tmp_path: Path, digits_uint8, model_file: Path,  # type: ignore[no-untyped-def]
                                          decoded: list[str]) -> None:
    folder = _folder(tmp_path / "in", 20, digits_uint8)
    (tmp_path / "afile").write_text("mine")
    cases = [
        (["--batch-size", "0", "--out", str(tmp_path / "a")], 64, "--batch-size"),
        (["--max-images", "0", "--out", str(tmp_path / "b")], 64, "--max-images"),
        (["--out", str(tmp_path / "afile")], 1, "is a file, not a folder"),
        (["--out", str(folder / "scores")], 1, "inside it"),  # would score its own heat maps next time
        (["--out", str(tmp_path / "afile" / "sub")], 1, "is a file, not a folder"),
    ]
    for extra, code, words in cases:
        r = runner.invoke(app, ["score", str(model_file), str(folder), *extra])
        assert r.exit_code == code and words in " ".join(r.output.split()), (extra, r.output)
    assert decoded == []
    assert (tmp_path / "afile").read_text() == "mine" and not (folder / "scores").exists()
    r = runner.invoke(app, ["fit", str(folder), "--out", str(tmp_path / "afile"), "--epochs", "1"])
    assert r.exit_code == 1 and "is a file" in r.output, r.output
    assert decoded == []


def test_max_images_limits_what_is_decoded(tmp_path: Path, digits_uint8, model_file: Path,  # type: ignore[no-untyped-def]
                                           decoded: list[str]) -> None:
    folder = _folder(tmp_path / "in", 40, digits_uint8)
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--max-images", "10", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert len(decoded) == 10
    with open(tmp_path / "s" / "scores.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 10
    decoded.clear()
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", str(folder), "--max-images", "10", "--out", str(out), "--epochs", "1",
                            "--size", "16", "--set", "model.widths=[8,16]"])
    assert r.exit_code == 0, r.output
    assert decoded == [str(folder / f"d{i:03d}.png") for i in range(10)]
    # An unreadable file among the first ten: the next file stands in, so 10 images still train.
    (folder / "d003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    decoded.clear()
    from aedetect.core.modelfile.file import read_metadata

    r = runner.invoke(app, ["fit", str(folder), "--max-images", "10", "--out", str(tmp_path / "run2"),
                            "--epochs", "1", "--size", "16", "--set", "model.widths=[8,16]"])
    assert r.exit_code == 0, r.output
    assert len(decoded) == 11 and read_metadata(tmp_path / "run2" / "model.safetensors")["training"]["images"] == 10
    assert np.all([p.endswith(f"d{i:03d}.png") for i, p in enumerate(decoded)])


def test_values_of_the_wrong_type_are_refused_at_the_boundary(tmp_path: Path, model_file: Path,  # type: ignore[no-untyped-def]
                                                              digits_uint8, decoded: list[str]) -> None:
    """A calibration value of the wrong type (in the call or in the model file) and a negative
    tile overlap are one clear error, never a TypeError from deep inside."""
    from aedetect import AnomalyDetector
    from aedetect.anomaly.jobs.calibrate import recalibrate
    from aedetect.denoise.denoiser import Denoiser
    from aedetect.errors import ConfigError, ModelFileError

    folder = _folder(tmp_path / "in", 10, digits_uint8)
    with pytest.raises(ConfigError, match="--target-fpr"):
        recalibrate(model_file, str(folder), tmp_path / "n.safetensors", rule="fpr", target_fpr="0.1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--batch-size"):
        recalibrate(model_file, str(folder), tmp_path / "n.safetensors", batch_size=0)
    with pytest.raises(ConfigError, match="--overlap"):
        Denoiser(overlap=-5)
    assert decoded == []
    det = AnomalyDetector.load(model_file)
    det.calibration_ = {**det.calibration_, "threshold": "0.5"}  # a hand-edited file
    bad = det.save(tmp_path / "bad.safetensors")
    with pytest.raises(ModelFileError, match="calibration.threshold"):
        AnomalyDetector.load(bad)
    r = runner.invoke(app, ["score", str(bad), str(folder), "--out", str(tmp_path / "s")])
    assert r.exit_code == 1 and "calibration.threshold is '0.5'" in r.output and decoded == []
