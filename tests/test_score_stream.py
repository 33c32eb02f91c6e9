"""``aedetect score`` streams: one batch of maps alive at a time, the same output as scoring the
whole set at once, and no partial scores.csv after an interrupted run."""

from __future__ import annotations

import csv
import json
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import aedetect.data.labelled as labelled
from aedetect import AnomalyDetector
from aedetect.cli import app
from aedetect.data.labelled import load_scoring_data
from aedetect.anomaly.evaluate.metrics import aupro, pixel_auroc
from aedetect.anomaly.maps.latent import knn_distance

runner = CliRunner()
BATCH = 4


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, digits_uint8) -> Path:  # type: ignore[no-untyped-def]
    images, target = digits_uint8
    zeros = images[target == 0][:100]
    det = AnomalyDetector(preset="small", epochs=4,
                          overrides={"train": {"batch_size": 32, "lr": 3e-3, "patience": 100}}).fit(zeros)
    return det.save(tmp_path_factory.mktemp("model") / "model.safetensors")


def _digit_folder(root: Path, images: np.ndarray, n: int) -> Path:
    """n real digit PNGs (some RGB, converted by the model's channel rule), one corrupt file among them."""
    root.mkdir(parents=True)
    for i in range(n):
        a = images[200 + i]
        Image.fromarray(np.repeat(a[:, :, None], 3, 2) if i % 5 == 0 else a).save(root / f"d{i:03d}.png")
    (root / "d007x.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Record, at every AnomalyDetector.score call: its batch size, how many maps (and inputs)
    of earlier calls are still alive, and how many files have been decoded so far."""
    seen: dict[str, list[int]] = {"batch": [], "alive": [], "decoded_ahead": []}
    refs: list[weakref.ref] = []
    counts = {"decoded": 0, "scored": 0}
    real_score, real_read = AnomalyDetector.score, labelled.read_image

    def read(path):  # type: ignore[no-untyped-def]
        counts["decoded"] += 1
        return real_read(path)

    def score(self, images, *args, **kwargs):  # type: ignore[no-untyped-def]
        n = len(images)
        seen["alive"].append(sum(r() is not None for r in refs))
        seen["batch"].append(n)
        counts["scored"] += n
        seen["decoded_ahead"].append(counts["decoded"] - counts["scored"])
        res = real_score(self, images, *args, **kwargs)
        refs.append(weakref.ref(res.maps))
        if res.inputs is not None:
            refs.append(weakref.ref(res.inputs))
        return res

    monkeypatch.setattr(AnomalyDetector, "score", score)
    monkeypatch.setattr(labelled, "read_image", read)
    return seen


def test_one_batch_of_maps_alive_at_a_time(model_file: Path, digits_uint8, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    images, _ = digits_uint8
    n = 30
    folder = _digit_folder(tmp_path / "in", images, n)
    seen = _spy(monkeypatch)
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--out", str(tmp_path / "out"),
                            "--batch-size", str(BATCH), "--all-heatmaps"])
    assert r.exit_code == 0, r.output
    # Every forward pass got one batch; before each, no map or input of an earlier batch was
    # alive any more, and at most two batches of files had been decoded ahead of scoring.
    assert seen["batch"] == [BATCH] * (n // BATCH) + [n % BATCH]
    assert max(seen["alive"]) == 0
    assert max(seen["decoded_ahead"]) <= 3 * BATCH
    rows = _rows(tmp_path / "out" / "scores.csv")
    assert len(rows) == n + 1 and rows[-1]["path"].endswith("d007x.png") and rows[-1]["error"]
    assert len(list((tmp_path / "out" / "heatmaps").glob("*.png"))) == n
    # The same numbers as scoring the whole set at once (same batches, so bit for bit).
    monkeypatch.undo()
    det = AnomalyDetector.load(model_file)
    whole = det.score(load_scoring_data(str(folder), det.config_.data), keep_images=False, batch_size=BATCH)
    assert [row["score"] for row in rows[:-1]] == [f"{s:.8g}" for s in whole.scores]
    assert [row["flag"] for row in rows[:-1]] == [str(int(f)) for f in whole.flags]


def test_masks_give_pixel_metrics_without_keeping_maps(model_file: Path, digits_uint8, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """MVTec layout with masks: pixel metrics equal the exact ones (all maps at once) to 1e-3."""
    images, target = digits_uint8
    root = tmp_path / "mvtec"
    for d in ("train/good", "test/good", "test/hole", "ground_truth/hole"):
        (root / d).mkdir(parents=True)
    for i in np.flatnonzero(target == 0)[100:115]:
        Image.fromarray(images[i]).save(root / "test" / "good" / f"{i}.png")
    for j, i in enumerate(np.flatnonzero(target == 0)[115:125]):
        img, mask = images[i].copy(), np.zeros((8, 8), np.uint8)
        mask[j % 5: j % 5 + 3, 2:5] = 255
        img[mask > 0] = 255 - img[mask > 0]
        Image.fromarray(img).save(root / "test" / "hole" / f"{j}.png")
        Image.fromarray(mask).save(root / "ground_truth" / "hole" / f"{j}_mask.png")
    seen = _spy(monkeypatch)
    r = runner.invoke(app, ["score", str(model_file), str(root), "--out", str(tmp_path / "out"),
                            "--batch-size", str(BATCH), "--no-heatmaps"])
    assert r.exit_code == 0, r.output
    assert max(seen["batch"]) == BATCH and max(seen["alive"]) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    monkeypatch.undo()
    det = AnomalyDetector.load(model_file)
    data = load_scoring_data(str(root), det.config_.data)
    whole = det.score(data, keep_images=False, batch_size=BATCH)
    masks = data.masks[:, 0].numpy()  # type: ignore[index]
    assert m["pixel_auroc"] == pytest.approx(pixel_auroc(masks, whole.maps), abs=1e-3)
    assert m["aupro"] == pytest.approx(aupro(masks, whole.maps), abs=1e-3)
    assert m["n_images"] == 25 and m["pixel_threshold"] == det.pixel_threshold_


def test_interrupted_run_leaves_no_scores_csv(model_file: Path, digits_uint8, tmp_path: Path,  # type: ignore[no-untyped-def]
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    images, _ = digits_uint8
    folder = _digit_folder(tmp_path / "in", images, 20)
    real_score, calls = AnomalyDetector.score, []

    def score(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_score(self, *args, **kwargs)

    monkeypatch.setattr(AnomalyDetector, "score", score)
    out = tmp_path / "out"
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--out", str(out), "--batch-size", str(BATCH)])
    assert r.exit_code == 130, r.output
    assert not (out / "scores.csv").exists()
    assert not list(out.glob(".scores*"))  # nor a stray temporary file


def test_latent_distance_does_not_depend_on_the_batch() -> None:
    g = torch.Generator().manual_seed(0)
    bank, codes = torch.randn(16, 64, generator=g), torch.randn(40, 64, generator=g)
    whole = knn_distance(codes, bank, 3)
    for i, k in ((0, 1), (5, 4), (10, 30)):
        assert torch.equal(knn_distance(codes[i:i + k], bank, 3), whole[i:i + k])
