"""The noise-level-aware denoisers (aedetect.core.model.plainnets), the fresh-crop pool, the cosine
schedule across a resume, fine-tuning with --init and the noise-level estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aedetect.core.config import Config
from aedetect.core.presets import build_config
from aedetect.core.training.train import initial_model, scheduled_lr
from aedetect.denoise.crops import CropPool
from aedetect.denoise.demo import noisy_version, photo
from aedetect.denoise.noise import parse_recipe
from aedetect.denoise.sigma import estimate_sigma
from aedetect.errors import ConfigError


def _cfg(arch: str, **model: object) -> Config:
    return build_config("denoise-unet", None, {"model": {"arch": arch, "widths": [16], "depth": 5,
                                                        "noise_map": True, **model}})


@pytest.mark.parametrize("arch", ["dncnn", "ffdnet"])
def test_plain_nets_take_the_level_map_keep_odd_sizes_and_start_near_identity(arch: str) -> None:
    m = initial_model(_cfg(arch)).eval()
    x = torch.rand(2, 1, 37, 50)
    inp = torch.cat([x, torch.full_like(x, 25 / 255)], 1)
    with torch.no_grad():
        y = m(inp)
    assert y.shape == x.shape
    # the last layer starts small: the untrained net returns (nearly) its input
    assert float((y - x).abs().max()) < 0.05
    with pytest.raises(ValueError, match=r"1 \+ 1 noise-level map"):
        m(x)


def test_plain_nets_and_the_level_map_are_refused_for_the_anomaly_head() -> None:
    with pytest.raises(ConfigError, match="model.arch: 'dncnn' is a denoiser"):
        build_config("small", None, {"model": {"arch": "dncnn"}})
    with pytest.raises(ConfigError, match="model.noise_map: .* Gaussian sigma"):
        build_config("denoise-unet", None, {"model": {"noise_map": True}, "denoise": {"noise": "jpeg", "level": 30}})


def test_crop_pool_holds_out_whole_images_and_refreshes_reproducibly() -> None:
    imgs = [torch.from_numpy(photo(n)[:96, :96].copy())[None] for n in
            ("astronaut", "coins", "moon", "clock", "page", "camera", "brick", "grass", "gravel", "text")]
    recipe = parse_recipe({"patch_size": 32, "crops_per_image": 4})
    pool = CropPool.draw(imgs, 255.0, recipe, 0, [f"im{i}" for i in range(10)])
    train, val = pool.split(0.2, 0)
    assert isinstance(train, CropPool) and isinstance(val, CropPool)
    assert len(val.sources) == 2 and len(train.sources) == 8
    assert not {p.split("#")[0] for p in train.paths} & {p.split("#")[0] for p in val.paths}
    first = train.images.clone()
    train.refresh(1)
    assert torch.equal(train.images, first)  # epoch 1 keeps the crops drawn at load time
    train.refresh(2)
    second = train.images.clone()
    assert second.shape == first.shape and not torch.equal(second, first)
    train.refresh(2)
    assert torch.equal(train.images, second)  # a resumed run draws what the cut one did


def test_cosine_schedule_runs_from_lr_to_lr_min() -> None:
    cfg = build_config("denoise-unet", None, {"train": {"lr": 1e-3, "lr_min": 1e-5, "schedule": "cosine"}})
    lrs = [scheduled_lr(cfg, k, 100) for k in range(101)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[50] == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert lrs[100] == pytest.approx(1e-5) and all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert scheduled_lr(build_config("denoise-unet"), 7, 100) == build_config("denoise-unet").train.lr


def _small_fit_cfg(epochs: int, **train: object) -> Config:
    return build_config("denoise-unet", None, {
        "model": {"arch": "ffdnet", "widths": [16], "depth": 4, "noise_map": True},
        "train": {"epochs": epochs, "batch_size": 8, "grid_every": 0, "schedule": "cosine", **train},
        "denoise": {"level": [0, 50], "patch_size": 32, "crops_per_image": 4}})


def _photos() -> list[np.ndarray]:
    return [photo(n)[:128, :128, None] for n in ("astronaut", "coins", "moon", "clock", "page", "brick")]


def test_a_resumed_run_continues_its_learning_rate_schedule(tmp_path, monkeypatch) -> None:
    """Cut after epoch 2 of 4 and resumed, the run has the uninterrupted run's learning rates."""
    from aedetect.core.training import train as train_mod
    from aedetect.core.training.fit import fit, resume_config

    whole = fit(_photos(), _small_fit_cfg(4), tmp_path / "whole").result.history
    real_save = train_mod.Trainer._save_state

    def save_then_stop(self, epoch: int) -> None:
        real_save(self, epoch)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod.Trainer, "_save_state", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        fit(_photos(), _small_fit_cfg(4), tmp_path / "cut")
    monkeypatch.setattr(train_mod.Trainer, "_save_state", real_save)
    resumed = fit(_photos(), resume_config(tmp_path / "cut"), resume=tmp_path / "cut").result
    assert [r["lr"] for r in resumed.history] == pytest.approx([r["lr"] for r in whole])
    assert whole[-1]["lr"] < whole[0]["lr"] / 3
    # the run's time and crops are the whole run's, not the resumed process's part
    assert resumed.seconds >= sum(r["seconds"] for r in resumed.history)
    assert resumed.extra["images_seen"] == sum(r["images"] for r in resumed.history)


def test_init_starts_from_the_given_model(tmp_path) -> None:
    """Fine-tuning from a model file: its architecture replaces the recipe's, and the first
    epoch (at a learning rate too small to move the weights) has its validation loss."""
    from aedetect.core.training.fit import fit

    first = fit(_photos(), _small_fit_cfg(2), tmp_path / "a")
    cfg = build_config("denoise-unet", None, {"train": {"epochs": 1, "lr": 1e-12, "grid_every": 0, "batch_size": 8},
                                              "denoise": {"level": [0, 50], "patch_size": 32, "crops_per_image": 4}})
    tuned = fit(_photos(), cfg, tmp_path / "b", init=first.model_path)
    assert cfg.model.arch == "ffdnet" and cfg.model.noise_map
    training = json.loads((tmp_path / "b" / "summary.json").read_text())["training"]
    assert training["init"] == str(first.model_path)
    assert training["init_val_loss"] == pytest.approx(tuned.result.history[0]["val_loss"], rel=1e-5)
    a = {k: v for k, v in first.result.model.state_dict().items()}
    b = tuned.result.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_noise_level_estimate_on_a_bundled_photo() -> None:
    """Haar-MAD estimate of sigma on scikit-image's camera with unclipped Gaussian noise
    (measured: 3.85, 9.32, 24.61, 49.86, 74.92 at 5, 10, 25, 50, 75 after the correction
    calibrated on Train400; raw 6.38, 11.27, 25.77, 50.43, 75.20). Clipped to 8 bits, a strong
    noise really is weaker (42.3 read at 50)."""
    clean = photo("camera").astype(np.float64)
    for sigma in (5.0, 10.0, 25.0, 50.0, 75.0):
        noisy = clean + np.random.default_rng(1).normal(0, sigma, clean.shape)
        est = float(estimate_sigma(torch.from_numpy(noisy / 255.0).float()[None, None])[0])
        assert abs(est - sigma) < 0.02 * sigma + 1.3, (sigma, est)
    clipped = noisy_version(clean, 50.0, seed=1)
    assert float(estimate_sigma(torch.from_numpy(clipped / 255.0).float()[None, None])[0]) < 47


def test_onnx_graph_of_a_noise_level_model_matches_the_denoiser(tmp_path) -> None:
    """The exported graph takes the image plus its sigma / 255 channel (measured: 6e-8 apart)."""
    ort = pytest.importorskip("onnxruntime")
    from aedetect.core.training.fit import fit
    from aedetect.core.modelfile.file import load_model
    from aedetect.denoise.denoiser import Denoiser
    from aedetect.denoise.export import export_denoise

    out = fit(_photos(), _small_fit_cfg(1), tmp_path / "run")
    onnx_path = export_denoise(load_model(out.model_path), tmp_path / "m.onnx")
    x = torch.rand(1, 1, 70, 90, generator=torch.Generator().manual_seed(0))
    ref = Denoiser.load(out.model_path, sigma=25).denoise_tensor(x).numpy()
    inp = torch.cat([x, torch.full_like(x, 25 / 255)], 1).numpy()
    got = ort.InferenceSession(str(onnx_path)).run(None, {"images": inp})[0]
    assert got.shape == ref.shape and float(np.abs(got - ref).max()) < 1e-4


def test_self_ensemble_turns_each_result_back() -> None:
    """An equivariant function is unchanged by the ensemble; a position-dependent one is
    averaged over the 8 flips/turns (a ramp becomes its mean over the dihedral group)."""
    from aedetect.denoise.ensemble import ensembled
    from aedetect.denoise.settings import check_ensemble

    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ensembled(lambda t: t * 2, 8)(x), x * 2)
    ramp = torch.arange(12.0).view(1, 1, 1, 12).expand(2, 1, 12, 12)
    got = ensembled(lambda t: t + ramp, 8)(x)
    assert torch.allclose(got, x + 5.5, atol=1e-5)  # every flip/turn of the ramp, averaged: 5.5
    assert ensembled(torch.sin, 1)(x).equal(torch.sin(x))
    with pytest.raises(ConfigError, match="--ensemble: 3 is not 1, 2, 4 or 8"):
        check_ensemble(3)


def test_init_keeps_the_init_models_noise_unless_the_user_gives_one(tmp_path) -> None:
    """Without a noise recipe of the user's, fine-tuning trains on the noise the --init model
    was trained on (here unclipped 0..50), not the preset's clipped 5..50."""
    from aedetect.core.training.fit import fit

    first = fit(_photos(), _small_fit_cfg(1), tmp_path / "a")
    cfg = build_config("denoise-unet", None, {"train": {"epochs": 1, "grid_every": 0, "batch_size": 8}})
    fit(_photos(), cfg, tmp_path / "b", init=first.model_path)
    assert cfg.denoise["level"] == [0, 50]
    mine = build_config("denoise-unet", None, {"train": {"epochs": 1, "grid_every": 0, "batch_size": 8},
                                               "denoise": {"level": 25, "patch_size": 32}})
    fit(_photos(), mine, tmp_path / "c", init=first.model_path)
    assert mine.denoise["level"] == 25
