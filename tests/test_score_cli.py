"""``aedetect score``: corrupt files, labels from folder layouts, metrics, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from conftest import save_png

from aedetect import AnomalyDetector
from aedetect.cli import app

runner = CliRunner()


def _digit(digits, i: int, rgb: bool = False) -> np.ndarray:  # type: ignore[no-untyped-def]
    a = digits.images[i, 0].numpy()
    return np.repeat(a[:, :, None], 3, 2) if rgb else a


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_corrupt_file_is_named_and_the_rest_scored(model_file: Path, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "in"
    for i in range(5):
        save_png(folder / f"img{i}.png", _digit(digits, 150 + i, rgb=i == 0))  # one RGB: converted to gray
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "broken.png" in "".join(r.output.split())  # the warning names it (rich may wrap the line)
    rows = _rows(tmp_path / "out" / "scores.csv")
    assert len(rows) == 6
    bad = [row for row in rows if row["path"].endswith("broken.png")]
    assert bad and bad[0]["error"] and bad[0]["score"] == ""
    good = [row for row in rows if not row["path"].endswith("broken.png")]
    assert all(row["score"] and row["flag"] in ("0", "1") and not row["error"] for row in good)


def test_fail_on_anomaly_exit_codes(model_file: Path, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "in"
    save_png(folder / "noise.png", np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8))
    save_png(folder / "white.png", np.full((8, 8), 255, np.uint8))
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--out", str(tmp_path / "a"), "--fail-on-anomaly"])
    assert r.exit_code == 2, r.output
    assert len(list((tmp_path / "a" / "heatmaps").glob("*.png"))) >= 1
    # With a threshold no image reaches, nothing is flagged: exit 0 even with --fail-on-anomaly.
    det = AnomalyDetector.load(model_file)
    det.calibration_ = {**det.calibration_, "threshold": 1e9}
    lax = det.save(tmp_path / "lax.safetensors")
    r = runner.invoke(app, ["score", str(lax), str(folder), "--out", str(tmp_path / "b"), "--fail-on-anomaly"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["score", str(model_file), str(tmp_path / "missing"), "--out", str(tmp_path / "c")])
    assert r.exit_code == 1 and "missing" in r.output


def test_mvtec_layout_gives_metrics_and_curves(model_file: Path, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "mvtec"
    (root / "train" / "good").mkdir(parents=True)
    labels = digits.labels.numpy()
    normal = np.flatnonzero(labels == 0)[120:150]
    for i in normal:
        save_png(root / "test" / "good" / f"{i}.png", _digit(digits, int(i)))
    for j, i in enumerate(np.flatnonzero(labels == 1)[:20]):
        img = _digit(digits, int(i)).copy()
        mask = np.zeros((8, 8), np.uint8)
        mask[2:5, 2:5] = 255
        img[mask > 0] = 255 - img[mask > 0]
        save_png(root / "test" / "defect" / f"{j}.png", img)
        save_png(root / "ground_truth" / "defect" / f"{j}_mask.png", mask)
    out = tmp_path / "out"
    r = runner.invoke(app, ["score", str(model_file), str(root), "--out", str(out), "--all-heatmaps"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    for key in ("image_auroc", "image_ap", "f1_at_threshold", "best_f1", "pixel_auroc", "aupro"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["image_auroc"] > 0.9
    assert (out / "roc.png").is_file() and (out / "pr.png").is_file()
    assert len(list((out / "heatmaps").rglob("*.png"))) == 50
    rows = _rows(out / "scores.csv")
    assert {row["label"] for row in rows} == {"0", "1"}


def test_folder_pair_and_dataset_name(model_file: Path, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    labels = digits.labels.numpy()
    for i in np.flatnonzero(labels == 0)[130:140]:
        save_png(tmp_path / "d" / "ok" / f"{i}.png", _digit(digits, int(i)))
    for i in np.flatnonzero(labels == 1)[:10]:
        save_png(tmp_path / "d" / "ng" / f"{i}.png", _digit(digits, int(i)))
    r = runner.invoke(app, ["score", str(model_file), str(tmp_path / "d"), "--normal-dir", "ok",
                            "--abnormal-dir", "ng", "--out", str(tmp_path / "o1"), "--no-heatmaps"])
    assert r.exit_code == 0, r.output
    assert "image AUROC" in r.output
    assert json.loads((tmp_path / "o1" / "metrics.json").read_text())["n_images"] == 20
    r = runner.invoke(app, ["score", str(model_file), "digits", "--normal-class", "0",
                            "--out", str(tmp_path / "o2"), "--no-heatmaps"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "o2" / "metrics.json").read_text())
    assert m["n_images"] == 1797 and m["image_auroc"] > 0.9


def test_conversions_to_fit_the_model_are_one_warning(model_file: Path, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A gray 8x8 model given colour 16x16 images: every image is converted; one line says so."""
    from PIL import Image

    folder = tmp_path / "in"
    for i in range(6):
        a = _digit(digits, 150 + i, rgb=i < 4)
        save_png(folder / f"img{i}.png", np.asarray(Image.fromarray(a).resize((16, 16), Image.NEAREST)))
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert text.count("converted to fit the model") == 1
    assert "4 from 3 channel(s) to 1" in text and "6 from 16x16 resize to 8x8" in text
    # ... and how far the flag can be trusted, from the model's calibration (16 normal images)
    assert "false-positive rate on new normal images:" in text and "interval from 16 calibration images" in text
    r = runner.invoke(app, ["info", str(model_file)])
    assert r.exit_code == 0 and "interval from 16 calibration images" in " ".join(r.output.split())
