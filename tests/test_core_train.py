"""The training loop on real data: it learns, keeps the best epoch, resumes, writes its files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from aedetect.core.modelfile.file import load_model
from aedetect.data.sources import load_training_data
from aedetect.core.training.fit import fit, resume_config
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.presets import build_config
from aedetect.core.training.train import Trainer


def _cfg(epochs: int, **train):  # type: ignore[no-untyped-def]
    """The training loop's tests: the autoencoder always trains (``autoencoder = on``; on these
    digits the ImageNet features alone would do, aedetect.anomaly.selection.plan)."""
    return build_config("small", overrides={"model": {"widths": [16, 32]}, "data": {"size": [8, 8]},
                                            "train": {"epochs": epochs, "batch_size": 64, "lr": 3e-3, **train},
                                            "anomaly": {"autoencoder": "on"}})


def test_training_on_digits_clearly_lowers_validation_loss(tmp_path: Path) -> None:
    cfg = _cfg(8)
    data = load_training_data("digits", cfg.data)
    train, val = data.split(0.15, seed=0)
    untrained = Trainer(ConvAutoencoder(cfg.model), cfg).evaluate(val)
    out = fit(data, cfg, tmp_path / "run")
    # Bar: the trained model's validation MSE is under half of the untrained model's.
    assert out.result.best_val_loss < 0.5 * untrained
    assert out.result.best_val_loss == min(h["val_loss"] for h in out.result.history)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"model.safetensors", "last.safetensors", "checkpoint.safetensors", "metrics.csv",
            "loss_curve.png", "recon_epoch001.png", "summary.json"} <= files
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))


def test_best_epoch_is_restored_and_saved(tmp_path: Path) -> None:
    cfg = _cfg(4)
    out = fit("digits", cfg, tmp_path / "run")
    mf = load_model(out.model_path)
    best = out.result.best_val_loss
    trainer = Trainer(mf.model, mf.config)
    _, val = out.data.split(cfg.train.val_fraction, cfg.train.seed)
    assert abs(trainer.evaluate(val) - best) < 1e-6
    assert mf.metadata["training"]["best_epoch"] == out.result.best_epoch


def test_resume_continues_an_interrupted_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit("digits", _cfg(2), run)
    cfg = resume_config(run)
    cfg.train.epochs = 4
    out = fit("digits", cfg, resume=run)
    assert [h["epoch"] for h in out.result.history] == [1, 2, 3, 4]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 4


def test_seed_makes_training_reproducible(tmp_path: Path) -> None:
    a = fit("digits", _cfg(2), tmp_path / "a").result.history
    b = fit("digits", _cfg(2), tmp_path / "b").result.history
    assert [h["val_loss"] for h in a] == [h["val_loss"] for h in b]


def test_early_stopping_with_patience(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # lr = 0 never improves after the first epoch: patience 2 stops at epoch 3. (An untrained
    # model outputs nearly one image, so with a flat loss the collapse check would stop it
    # first, rightly: tests/test_collapse.py. Here only early stopping is under test.)
    monkeypatch.setattr(Trainer, "_check_collapse", lambda self, epoch, val, val_loss: None)
    out = fit("digits", _cfg(10, lr=1e-12, patience=2), tmp_path / "run")
    assert out.result.stopped_early and len(out.result.history) == 3


def test_encoder_only_weight_decay(tmp_path: Path) -> None:
    cfg = build_config("single-layer", overrides={"data": {"size": [8, 8]}, "train": {"epochs": 1}})
    trainer = Trainer(ConvAutoencoder(cfg.model), cfg)
    groups = trainer.optimizer.param_groups
    assert groups[0]["weight_decay"] == 1e-5 and groups[1]["weight_decay"] == 0.0
    enc = sum(p.numel() for p in groups[0]["params"])
    assert enc == trainer.model.parameter_counts()["encoder_parameters"]


def test_all_losses_train(tmp_path: Path) -> None:
    for loss in ("l1", "bce", "ssim", "l1+ssim"):
        cfg = _cfg(1, loss=loss, max_images=200)
        out = fit("digits", cfg, tmp_path / loss)
        assert torch.isfinite(torch.tensor(out.result.best_val_loss))


def test_a_diverging_loss_stops_with_a_clear_error() -> None:
    import pytest

    cfg = _cfg(1)
    data = load_training_data("digits", cfg.data)
    train, val = data.split(0.2, seed=0)
    trainer = Trainer(ConvAutoencoder(cfg.model), cfg, corrupt=lambda x, g: x * float("nan"))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        trainer.fit(train, val)
