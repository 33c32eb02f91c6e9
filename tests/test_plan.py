"""ImageNet features first (aedetect.anomaly.selection.plan): the autoencoder trains only where the
ImageNet candidates leave room on the label-free objective and the time budget allows it, never
for a scoring that does not read it; without one the model file holds no network and scores
as before after a reload."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from aedetect import AnomalyDetector
from aedetect.anomaly.evaluate.metrics import image_auroc
from aedetect.errors import ConfigError


def _zeros(digits, n: int = 150):  # type: ignore[no-untyped-def]
    return digits.subset(np.flatnonzero(digits.labels.numpy() == 0)[:n].tolist())


def _test(digits):  # type: ignore[no-untyped-def]
    """Zeros never trained on (from the 150th on) against 100 other digits."""
    zeros = np.flatnonzero(digits.labels.numpy() == 0)[150:]
    others = np.flatnonzero(digits.labels.numpy() == 1)[:100]
    return digits.subset(np.r_[zeros, others].tolist())


def test_features_enough_trains_no_autoencoder_and_the_file_scores_alike(digits, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aedetect")
    det = AnomalyDetector(preset="small", epochs=5, anomaly={"features_enough": 0.5}).fit(_zeros(digits))
    assert det.config_.model.arch == "none" and det.history_ == []
    assert sum(p.numel() for p in det.model_.parameters()) == 0
    assert "no autoencoder is trained" in caplog.text
    sel = det.calibration_["selection"]
    assert sel["autoencoder_trained"] is False and "pretrained" in sel["chosen"]
    test = _test(digits)
    scores = det.score(test, keep_images=False).scores
    assert image_auroc(test.labels.numpy(), scores) > 0.95  # ImageNet features tell a 1 from a 0
    again = AnomalyDetector.load(det.save(tmp_path / "m.safetensors"), device="cpu")
    assert again.config_.model.arch == "none"
    np.testing.assert_allclose(again.score(test, keep_images=False).scores, scores, rtol=1e-5)


def test_room_left_and_no_time_limit_trains_the_autoencoder_and_the_selection_compares(digits) -> None:  # type: ignore[no-untyped-def]
    det = AnomalyDetector(preset="small", epochs=2, anomaly={"features_enough": 1.0},
                          overrides={"train": {"time_budget": 0}}).fit(_zeros(digits))
    assert det.config_.model.arch == "conv" and len(det.history_) == 2
    sel = det.calibration_["selection"]
    assert sel["autoencoder_trained"] is True
    # Aligned digits: the ImageNet ranking also had local defects, so the objectives are not
    # comparable and the trained selection (which tries the ImageNet vector too) decides.
    first = sel["features_first"]
    assert set(first["families"]) == set(sel["families"]) | {"patch", "scratch", "stain", "hole"}
    assert "autoencoder_best" not in sel and first["objective"] < 1.0


def test_a_time_budget_the_probe_says_is_too_short_trains_nothing(digits, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="aedetect")
    det = AnomalyDetector(preset="small", epochs=5, anomaly={"features_enough": 1.0},
                          overrides={"train": {"time_budget": 1e-6}}).fit(_zeros(digits))
    assert det.config_.model.arch == "none"
    assert "over the time budget" in caplog.text


def test_pinned_scoring_trains_exactly_when_it_reads_the_autoencoder(digits) -> None:  # type: ignore[no-untyped-def]
    pretrained = AnomalyDetector(preset="small", epochs=1, anomaly={"map": "pretrained"}).fit(_zeros(digits))
    assert pretrained.config_.model.arch == "none"
    mse = AnomalyDetector(preset="small", epochs=1, anomaly={"map": "mse"}).fit(_zeros(digits))
    assert mse.config_.model.arch == "conv" and len(mse.history_) == 1
    with pytest.raises(ConfigError, match="anomaly.autoencoder: 'off', but the scoring settings given read an autoencoder"):
        AnomalyDetector(preset="small", epochs=1, anomaly={"map": "mse", "autoencoder": "off"}).fit(_zeros(digits))


def test_autoencoder_on_always_trains(digits) -> None:  # type: ignore[no-untyped-def]
    det = AnomalyDetector(preset="small", epochs=1, anomaly={"autoencoder": "on", "features_enough": 0.0}).fit(_zeros(digits))
    assert det.config_.model.arch == "conv" and len(det.history_) == 1


def test_the_training_loop_stops_at_its_time_budget(digits, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from aedetect.core.presets import build_config
    from aedetect.core.training.train import Trainer, initial_model

    caplog.set_level(logging.INFO, logger="aedetect")
    cfg = build_config("small", overrides={"data": {"size": [8, 8]}, "train": {"epochs": 4, "time_budget": 1e-6,
                                                                              "grid_every": 0, "device": "cpu"}})
    train, val = _zeros(digits).split(0.2, 0)
    result = Trainer(initial_model(cfg), cfg).fit(train, val)
    assert len(result.history) == 1 and result.stopped_early
    assert "time budget" in caplog.text


def test_a_model_with_no_network_refuses_what_needs_one(digits) -> None:  # type: ignore[no-untyped-def]
    from aedetect.core.model.cae import ConvAutoencoder
    from aedetect.core.presets import build_config

    cfg = build_config("small", overrides={"model": {"arch": "none"}, "data": {"size": [8, 8]}})
    net = ConvAutoencoder(cfg.model)
    x = torch.rand(3, 1, 8, 8)
    y, code, skips = net.forward_parts(x)
    assert torch.equal(y, x) and code.shape == (3, 0) and skips == []
    with pytest.raises(ConfigError, match="no latent code"):
        net.encode(x)
    with pytest.raises(ConfigError, match="for --task anomaly only"):
        build_config("denoise-unet", overrides={"model": {"arch": "none"}})


def test_a_default_fit_with_no_network_goes_through_every_command(digit_folder: Path, tmp_path: Path) -> None:
    """`aedetect fit DIR` with every default on real digits trains no autoencoder here, and the
    model file it writes is scored, shown, exported or refused in one line, like any other."""
    from typer.testing import CliRunner

    from aedetect.cli import app
    from aedetect.core.modelfile.file import load_model

    runner = CliRunner()
    run = tmp_path / "run"
    r = runner.invoke(app, ["fit", str(digit_folder), "--out", str(run), "--size", "16",
                            "--set", "anomaly.features_enough=0.5"])
    assert r.exit_code == 0, r.output
    model = run / "model.safetensors"
    assert load_model(model).config.model.arch == "none"
    info = runner.invoke(app, ["info", str(model)])
    assert info.exit_code == 0 and "no autoencoder" in info.output, info.output
    score = runner.invoke(app, ["score", str(model), str(digit_folder), "--out", str(tmp_path / "s")])
    assert score.exit_code == 0, score.output
    rows = (tmp_path / "s" / "scores.csv").read_text().splitlines()[1:]
    assert sum(r.split(",")[1] != "" for r in rows) == 120 and sum("cannot decode" in r for r in rows) == 1
    inspect = runner.invoke(app, ["inspect", str(model), "--out", str(tmp_path / "i")])
    assert inspect.exit_code == 1 and "no network to inspect" in inspect.output and "Traceback" not in inspect.output
