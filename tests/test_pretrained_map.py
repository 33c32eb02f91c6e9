"""The ``pretrained`` anomaly map (ImageNet features of EfficientNet-Lite0, nearest training
features, as PatchCore): it outlines defects on a stochastic texture far better than the
autoencoder's own maps, its extractor and bank travel in the model file, the label-free
selection tries it on surfaces, and missing weights are one line before any training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aedetect import AnomalyDetector
from aedetect.anomaly.maps.backbone import (CHANNELS, WEIGHTS_ENV, decode_backbone, encode_backbone, load_backbone,
                                       scale_of)
from aedetect.anomaly.selection.defects import defect_test_set
from aedetect.anomaly.evaluate.metrics import pixel_auroc
from aedetect.anomaly.settings import AnomalySettings
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops
from aedetect.errors import ConfigError
from conftest import map_vs_reconstruction

TRAIN = {"model": {"latent_channels": 4}, "train": {"batch_size": 32, "lr": 2e-3, "patience": 100}}


def grass_sets() -> tuple[ImageSet, ImageSet, ImageSet]:
    """Training crops of the top half of scikit-image's grass, calibration crops of the next
    quarter, and test crops of the bottom quarter, half with a synthetic defect (exact masks):
    three bands, so no crop shares a pixel with a training crop."""
    return (ImageSet(images=texture_crops("grass", 64, 24, rows=(0.0, 0.5))),
            ImageSet(images=texture_crops("grass", 64, 24, rows=(0.5, 0.75))),
            defect_test_set("grass", 64, 24, rows=(0.75, 1.0), seed=1))


@pytest.fixture(scope="module")
def grass():  # type: ignore[no-untyped-def]
    train, calib, test = grass_sets()
    # autoencoder on: the comparison below is with the squared error of a trained model
    det = AnomalyDetector(preset="small", epochs=2, seed=0, anomaly={"map": "pretrained", "pretrained_bank": 4000,
                                                                     "autoencoder": "on"},
                          overrides=TRAIN).fit(train, calibration=calib)
    return det, test


def test_pretrained_map_outlines_defects_on_grass(grass) -> None:  # type: ignore[no-untyped-def]
    det, test = grass
    pretrained, reconstruction = map_vs_reconstruction(det, test)
    # Measured: 0.976 against 0.783 for the squared error of the same (briefly trained) model;
    # the autoencoder's own ``features`` map reaches 0.85-0.88 (test_featuremap.py).
    assert pretrained > 0.93
    assert pretrained > reconstruction + 0.1


def test_extractor_and_bank_round_trip_through_the_model_file(grass, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    det, test = grass
    cal = det.calibration_
    assert cal["feature_bank"]["shape"] == [4000, CHANNELS]
    assert cal["pretrained_backbone"]["architecture"] == "efficientnet-lite0"
    path = det.save(tmp_path / "m.safetensors")
    # Scoring needs the model file alone: the weights package is not read again.
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "absent.pth"))
    again = AnomalyDetector.load(path)
    a, b = det.score(test, keep_images=False), again.score(test, keep_images=False)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    np.testing.assert_array_equal(a.flags, b.flags)


def test_stored_extractor_gives_the_same_features_as_the_weights_file() -> None:
    net = load_backbone()
    x = torch.rand(2, 1, 40, 56, generator=torch.Generator().manual_seed(0))
    f = net(x, 2)
    assert f.shape == (2, CHANNELS, 20, 28)  # the stride-4 grid of the image enlarged twice
    torch.testing.assert_close(decode_backbone(encode_backbone(net))(x, 2), f)
    # RGB and gray give the same features for a gray picture.
    torch.testing.assert_close(net(x.expand(-1, 3, -1, -1), 2), f)


def test_auto_scale_follows_the_image_size() -> None:
    assert [scale_of("auto", (s, s)) for s in (28, 64, 100, 128, 512)] == [4, 2, 2, 1, 1]
    assert scale_of(3, (64, 64)) == 3
    with pytest.raises(ConfigError, match="anomaly.pretrained_scale"):
        AnomalySettings.from_config({"pretrained_scale": 0})
    with pytest.raises(ConfigError, match="anomaly.select_pretrained"):
        AnomalySettings.from_config({"select_pretrained": "yes"})


def test_missing_weights_fail_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, _, _ = grass_sets()
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "absent.pth"))
    det = AnomalyDetector(preset="small", epochs=50, anomaly={"map": "pretrained"}, overrides=TRAIN)
    with pytest.raises(ConfigError, match="absent.pth: no such weights file"):
        det.fit(train.subset(list(range(12))))
    assert not hasattr(det, "model_")  # refused before any epoch


def test_selection_tries_the_pretrained_map_on_a_surface_and_not_when_off() -> None:
    train, calib, _ = grass_sets()
    train, calib = train.subset(list(range(0, len(train), 2))), calib.subset(list(range(12)))
    runs = {}
    for mode in ("auto", "off"):
        det = AnomalyDetector(preset="small", epochs=1, seed=0, anomaly={"select_pretrained": mode, "select_draws": 1,
                                                                         "autoencoder": "on"},
                              overrides=TRAIN).fit(train, calibration=calib)
        runs[mode] = det.calibration_["selection"]
    names = {mode: [c["name"] for c in sel["candidates"]] for mode, sel in runs.items()}
    assert sum(n.startswith("pretrained ") for n in names["auto"]) == 6  # 2 smoothings x top 1 %, top 5 %, max
    assert not any(n.startswith("pretrained ") for n in names["off"])
    # On grass the pretrained map outlines the synthetic defects best, so it is chosen; without
    # it the choice is one of the autoencoder's maps.
    assert runs["auto"]["chosen"].startswith("pretrained ")
    assert not runs["off"]["chosen"].startswith("pretrained ")
    best = max(runs["auto"]["candidates"], key=lambda c: c["auroc"])
    assert best["name"] == runs["auto"]["chosen"]


def test_pretrained_latent_vector_separates_digits_and_survives_the_model_file(
        digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """``latent_source = pretrained`` alone on real 8x8 digits: trained on threes, scored on
    held-out threes against every other digit."""
    from aedetect.anomaly.evaluate.metrics import image_auroc

    classes = digits.classes.numpy()
    threes = np.flatnonzero(classes == 3)
    train = digits.subset(threes[:120].tolist())
    test = digits.subset(np.r_[threes[120:], np.flatnonzero(classes != 3)[:300]].tolist())
    labels = (test.classes.numpy() != 3).astype(int)
    det = AnomalyDetector(preset="small", epochs=1, seed=0,
                          anomaly={"latent": "knn", "latent_source": "pretrained", "latent_bank": "train",
                                   "recon_weight": 0.0, "latent_metric": "cosine"},
                          overrides={"train": {"batch_size": 32}}).fit(train)
    auroc = image_auroc(labels, det.anomaly_score(test))
    assert auroc > 0.97  # measured 0.997; the raw-pixel kNN (latent_source = pixels) 0.980 on the same images
    assert det.calibration_["latent_bank"]["shape"][1] == 4 * CHANNELS  # a 2x2 grid
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "absent.pth"))
    again = AnomalyDetector.load(det.save(tmp_path / "m.safetensors"))
    np.testing.assert_allclose(again.anomaly_score(test), det.anomaly_score(test), rtol=1e-5)


def test_selection_tries_the_pretrained_vector_on_aligned_objects(digits) -> None:  # type: ignore[no-untyped-def]
    zeros = digits.subset(np.flatnonzero(digits.classes.numpy() == 0)[:120].tolist())
    det = AnomalyDetector(preset="small", epochs=1, seed=0, overrides={"train": {"batch_size": 32}}).fit(zeros)
    names = [c["name"] for c in det.calibration_["selection"]["candidates"]]
    assert any("pretrained/cosine kNN" in n for n in names)
    assert not any(n.startswith("pretrained ") for n in names)  # the map is a surfaces' candidate


def test_pretrained_latent_vector_exports_to_onnx_with_parity(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The extractor travels in the ONNX graph: its scores match aedetect's."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from aedetect.anomaly.jobs.export import export_anomaly
    from aedetect.core.modelfile.file import load_model

    zeros = digits.subset(np.flatnonzero(digits.classes.numpy() == 0)[:120].tolist())
    det = AnomalyDetector(preset="small", epochs=1, seed=0,
                          anomaly={"latent": "knn", "latent_source": "pretrained", "latent_bank": "train",
                                   "latent_metric": "cosine", "latent_weight": 3.0, "map": "ssim"},
                          overrides={"train": {"batch_size": 32}}).fit(zeros)
    path = det.save(tmp_path / "m.safetensors")
    out = export_anomaly(load_model(path), tmp_path / "m.onnx")
    images = digits.images[:200]
    _, _, score = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"images": images.numpy().astype(np.float32) / digits.max_value})
    want = det.anomaly_score(images)
    assert np.abs(score - want).max() <= 1e-4 * np.abs(want).max()


def test_the_greedy_coreset_covers_the_training_features_better_than_a_uniform_sample() -> None:
    """PatchCore's coreset (pretrained_coreset): of the same size, its farthest training vector
    lies nearer than a uniform sample's, since a uniform sample repeats the common places and
    misses rare normal ones (real grass features)."""
    from aedetect.anomaly.maps.backbone import training_pool
    from aedetect.anomaly.maps.featuremap import greedy_coreset

    train, _, _ = grass_sets()
    pool = training_pool(load_backbone(), train, 1, 6000)
    core, uniform = greedy_coreset(pool, 300, seed=0), pool[torch.randperm(len(pool))[:300]]
    farthest = [float(torch.cdist(pool, bank).min(1).values.max()) for bank in (core, uniform)]
    assert farthest[0] < 0.95 * farthest[1]  # measured: 31.5 against 35.5
    assert torch.equal(greedy_coreset(pool, 300, seed=0), core)  # seeded
    assert greedy_coreset(pool[:10], 300).shape[0] == 10  # fewer vectors than asked: all of them
    # The pool is taken once per image set: asking again for fewer gives a sample of it.
    assert training_pool(load_backbone(), train, 1, 1000).shape[0] == 1000
