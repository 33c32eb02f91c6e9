"""``aedetect calibrate``: F1-optimal and target-FPR thresholds on labelled data, never overwriting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import save_png

from aedetect import AnomalyDetector
from aedetect.core.modelfile.file import read_metadata
from aedetect.cli import app
from aedetect.data.labelled import load_scoring_data
from aedetect.anomaly.evaluate.metrics import f1_at_threshold

runner = CliRunner()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory, digits) -> Path:  # type: ignore[no-untyped-def]
    """Unseen zeros are good; other digits with an inverted 3x3 patch (masked) are defects."""
    root = tmp_path_factory.mktemp("mvtec")
    (root / "train" / "good").mkdir(parents=True)
    labels = digits.labels.numpy()
    for i in np.flatnonzero(labels == 0)[120:]:
        save_png(root / "test" / "good" / f"{i}.png", digits.images[int(i), 0].numpy())
    rng = np.random.default_rng(0)
    for j, i in enumerate(np.flatnonzero(labels == 1)[:40:2].tolist() + np.flatnonzero(labels == 8)[:20:2].tolist()):
        img = digits.images[int(i), 0].numpy().copy()
        mask = np.zeros((8, 8), np.uint8)
        r, c = rng.integers(1, 5, 2)
        mask[r:r + 3, c:c + 3] = 255
        img[mask > 0] = 255 - img[mask > 0]
        save_png(root / "test" / "defect" / f"{j}.png", img)
        save_png(root / "ground_truth" / "defect" / f"{j}_mask.png", mask)
    return root


def test_f1_rule_writes_a_new_model_and_keeps_the_old(model_file: Path, mvtec: Path, tmp_path: Path) -> None:
    before = _sha(model_file)
    new = tmp_path / "f1.safetensors"
    r = runner.invoke(app, ["calibrate", str(model_file), str(mvtec), "--out", str(new)])
    assert r.exit_code == 0, r.output
    assert new.is_file() and _sha(model_file) == before
    assert "F1 on DATA" in r.output and "threshold" in r.output

    old_meta, new_meta = read_metadata(model_file), read_metadata(new)
    assert new_meta["sha256"] == old_meta["sha256"]  # the same weights
    assert new_meta["config"] == old_meta["config"] and new_meta["training"] == old_meta["training"]
    cal = new_meta["calibration"]
    assert cal["threshold_rule"] == "f1" and old_meta["calibration"]["threshold_rule"] == "fpr"
    assert cal["validation_images"] == cal["validation_normal"] + cal["validation_anomalous"] == 78
    assert cal["validation_data"] == str(mvtec)
    assert cal["previous_threshold"] == old_meta["calibration"]["threshold"]
    assert cal["pixel_threshold_rule"] == "f1"  # the set has masks

    # Independently: the new threshold's F1 on the set is at least the old one's, and is the reported one.
    old_det, new_det = AnomalyDetector.load(model_file), AnomalyDetector.load(new)
    data = load_scoring_data(str(mvtec), old_det.config_.data)
    labels = data.labels.numpy()
    scores = new_det.score(data, keep_images=False).scores
    f1_new = f1_at_threshold(labels, scores, new_det.threshold_)
    f1_old = f1_at_threshold(labels, scores, old_det.threshold_)
    assert f1_new >= f1_old and f1_new > 0.8
    assert f1_new == pytest.approx(cal["validation_best_f1"]) == pytest.approx(cal["validation_f1"])
    # the normalised score still maps the threshold to 0.5
    assert np.all((new_det.score(data, keep_images=False).normalized > 0.5) == (scores > new_det.threshold_))

    # `aedetect info` shows the new calibration
    r = runner.invoke(app, ["info", str(new), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["calibration"]["threshold"] == cal["threshold"]
    r = runner.invoke(app, ["info", str(new)])
    assert "calibration.threshold_rule" in r.output and '"f1"' in r.output

    # An existing --out (or the input itself) is refused: one red line, exit 1, nothing written.
    new_sha = _sha(new)
    for target in (new, model_file):
        r = runner.invoke(app, ["calibrate", str(model_file), str(mvtec), "--out", str(target)])
        assert r.exit_code == 1 and "already exists" in r.output and "Traceback" not in r.output
    assert _sha(new) == new_sha and _sha(model_file) == before


def test_fpr_rule_holds_the_target_on_validation_normals(model_file: Path, mvtec: Path, tmp_path: Path) -> None:
    new = tmp_path / "fpr.safetensors"
    r = runner.invoke(app, ["calibrate", str(model_file), str(mvtec), "--rule", "fpr",
                            "--target-fpr", "0.05", "--out", str(new)])
    assert r.exit_code == 0, r.output
    cal = read_metadata(new)["calibration"]
    assert cal["threshold_rule"] == "fpr" and cal["target_fpr"] == 0.05
    assert cal["pixel_threshold"] == read_metadata(model_file)["calibration"]["pixel_threshold"]
    det = AnomalyDetector.load(new)
    normals = load_scoring_data(str(mvtec / "test" / "good"), det.config_.data)
    fpr = float(det.predict(normals).mean())
    assert fpr <= 0.05 + 1e-9 and fpr == pytest.approx(cal["validation_fpr"])
    assert fpr >= 1 / 58 - 1e-9  # 58 normals: the conformal rank ceil(0.95 x 59) = 57 lets 1 through (ties aside)


def test_f1_rule_needs_both_classes_and_labels(model_file: Path, mvtec: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.safetensors"
    r = runner.invoke(app, ["calibrate", str(model_file), str(mvtec), "--normal-dir", "test/good", "--out", str(out)])
    assert r.exit_code == 1, r.output
    line = " ".join(r.output.split())  # rich may wrap the one red line in a narrow terminal
    assert "needs normal and anomalous images" in line and "0 anomalous" in line and "--rule fpr" in line
    r = runner.invoke(app, ["calibrate", str(model_file), str(mvtec / "test" / "good"), "--out", str(out)])
    assert r.exit_code == 1 and "no labels" in r.output
    r = runner.invoke(app, ["calibrate", str(model_file), str(mvtec), "--rule", "auc", "--out", str(out)])
    assert r.exit_code == 64 and "--rule" in r.output
    assert not out.exists()


def test_fpr_rule_on_a_plain_folder_of_good_images(model_file: Path, mvtec: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``aedetect calibrate MODEL GOOD_DIR --rule fpr``: a folder without labels is all normal
    (what `fit` tells a user to run when its calibration images overlapped the training ones);
    and a relative --normal-dir is taken below DATA even where the working folder has one of
    that name."""
    good = mvtec / "test" / "good"
    n = len(list(good.glob("*.png")))
    out = tmp_path / "plain.safetensors"
    r = runner.invoke(app, ["calibrate", str(model_file), str(good), "--rule", "fpr", "--target-fpr", "0.05",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    cal = read_metadata(out)["calibration"]
    assert cal["validation_normal"] == n and cal["validation_anomalous"] == 0 and cal["calib_images"] == n
    decoy = tmp_path / "cwd" / "good"
    for i in range(3):
        save_png(decoy / f"{i}.png", np.full((8, 8), 40 * i, np.uint8))
    monkeypatch.chdir(tmp_path / "cwd")
    out2 = tmp_path / "below.safetensors"
    r = runner.invoke(app, ["calibrate", str(model_file), str(mvtec / "test"), "--normal-dir", "good", "--rule", "fpr",
                            "--target-fpr", "0.05", "--out", str(out2)])
    assert r.exit_code == 0, r.output
    assert read_metadata(out2)["calibration"]["validation_normal"] == n
