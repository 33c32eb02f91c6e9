"""The denoise head: noise recipes, training on real photo crops, tiling, and the folder command."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import untrained_model

from aedetect.cli import app
from aedetect.denoise.denoiser import Denoiser
from aedetect.denoise.demo import noisy_version, photo, psnr8
from aedetect.errors import ConfigError, DataError
from aedetect.denoise.noise import make_corruption, parse_level, parse_recipe
from aedetect.denoise.tiling import run_tiled, tile_starts

runner = CliRunner()


# ---- noise recipes --------------------------------------------------------------------------
def test_recipe_validation_names_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError, match="denoise.noise: 'pink' is not one of gaussian, shot"):
        parse_recipe({"noise": "pink"})
    with pytest.raises(ConfigError, match=r"denoise.level.*0 <= low <= high <= 255"):
        parse_recipe({"noise": "gaussian", "level": [50, 5]})
    with pytest.raises(ConfigError, match="denoise.patchsize: unknown key"):
        parse_recipe({"patchsize": 64})
    with pytest.raises(ConfigError, match="table per kind"):
        parse_recipe({"noise": ["gaussian", "jpeg"], "level": 25})
    r = parse_recipe({"noise": ["gaussian", "jpeg"], "level": {"jpeg": [20, 40]}})
    assert r.levels == {"gaussian": (5.0, 50.0), "jpeg": (20.0, 40.0)} and r.blind
    assert parse_level("5:50") == [5.0, 50.0] and parse_level("25") == 25.0


def test_gaussian_noise_has_the_requested_sigma_in_both_scalings() -> None:
    x = torch.full((4, 1, 64, 64), 0.5)
    g = torch.Generator().manual_seed(0)
    y = make_corruption({"noise": "gaussian", "level": 25, "clip": False})(x, g)
    assert abs(float((y - x).std()) * 255 - 25) < 0.5
    y2 = make_corruption({"noise": "gaussian", "level": 25, "clip": False}, "symmetric")(x * 2 - 1, g)
    assert abs(float((y2 - (x * 2 - 1)).std()) * 255 / 2 - 25) < 0.5


@pytest.mark.parametrize("kind,level", [("shot", 0.3), ("speckle", 0.3), ("salt_pepper", 0.05), ("jpeg", 10)])
def test_albumentations_kinds_corrupt_reproducibly(kind: str, level: float) -> None:
    x = torch.from_numpy(photo("astronaut")[:64, :64].astype(np.float32) / 255)[None, None].repeat(2, 1, 1, 1)
    noise = make_corruption({"noise": kind, "level": level})
    a = noise(x, torch.Generator().manual_seed(1))
    b = noise(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert float((a - x).abs().mean()) > 0.005 and 0 <= float(a.min()) and float(a.max()) <= 1
    if kind == "salt_pepper":
        changed = (a != x).float().mean()
        assert 0.02 < float(changed) < 0.08


# ---- training on real crops -----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Denoiser:
    """A denoiser trained for a few seconds on crops of scikit-image photographs (not camera)."""
    train = [photo(n)[::2, ::2] for n in ("astronaut", "coins", "moon", "clock", "page")]
    den = Denoiser("denoise-unet", level=25, overrides={
        "model": {"widths": [16, 32], "convs_per_level": 1},
        "train": {"epochs": 6, "batch_size": 8, "lr": 2e-3, "grid_every": 0, "seed": 0},
        "denoise": {"patch_size": 32, "crops_per_image": 32}})
    return den.fit(train, out=tmp_path_factory.mktemp("denoise_run"))


def test_brief_training_raises_psnr_on_a_held_out_photo(trained: Denoiser) -> None:
    clean = photo("camera")[200:328, 200:328]  # never trained on
    noisy = noisy_version(clean, 25)
    out = trained.denoise(noisy)
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    # Stated margin: at least +3 dB over the noisy input (about +6 dB measured).
    assert psnr8(out, clean) > psnr8(noisy, clean) + 3.0


def test_model_file_records_noise_recipe_and_info_shows_it(trained: Denoiser) -> None:
    from aedetect.core.modelfile.info import describe

    d = describe(str(trained.model_path))
    assert d["task"] == "denoise" and d["noise"]["level"] == 25
    cal = d["calibration"]
    assert cal["noise"]["noise"] == ["gaussian"] and cal["val_psnr_denoised"] > cal["val_psnr_noisy"]


def test_api_keeps_kind_shape_and_dtype(trained: Denoiser) -> None:
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 255, (3, 40, 36), dtype=np.uint8)
    assert trained.denoise(batch).shape == batch.shape
    rgb16 = rng.integers(0, 65535, (30, 20, 3), dtype=np.uint16)
    y = trained.denoise(rgb16)  # gray model on colour: per channel
    assert y.dtype == np.uint16 and y.shape == rgb16.shape
    t = torch.rand(2, 1, 24, 24)
    assert trained.denoise(t).shape == t.shape and trained.denoise(t[0]).shape == t[0].shape


# ---- tiling ---------------------------------------------------------------------------------
def test_tile_starts_cover_the_image_with_overlap() -> None:
    s = tile_starts(300, 128, 32)
    assert s[0] == 0 and s[-1] == 300 - 128
    assert all(b - a <= 128 - 32 for a, b in zip(s, s[1:]))


def test_tiled_and_untiled_agree(trained: Denoiser) -> None:
    clean = photo("camera")[100:340, 60:310]
    noisy = noisy_version(clean, 25).astype(np.float32) / 255
    x = torch.from_numpy(noisy)[None, None]
    stride = trained.config.model.total_stride
    model = trained.model
    with torch.no_grad():
        whole = run_tiled(model, x, max_pixels=10 ** 9, overlap=32, multiple=stride)
        tiled = run_tiled(model, x, max_pixels=96 * 96, overlap=32, multiple=stride)
    diff = (whole - tiled).abs() * 255
    assert float(diff.mean()) < 0.2 and float(diff.max()) < 4.0


# ---- the folder command ---------------------------------------------------------------------
def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_folder_run_safety_resume_and_corrupt_file(tmp_path: Path) -> None:
    model = untrained_model(tmp_path / "m.safetensors")
    src, ref = tmp_path / "in", tmp_path / "clean"
    for sub in ("a", "b/c"):
        (src / sub).mkdir(parents=True)
        (ref / sub).mkdir(parents=True)
    clean = photo("camera")[:48, :64]
    for i, sub in enumerate(("a", "b/c", "a")):
        Image.fromarray(clean).save(ref / sub / f"x{i}.png")
        Image.fromarray(noisy_version(clean, 20, seed=i)).save(src / sub / f"x{i}.png")
    (src / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    before = _digest(src)
    out = tmp_path / "out"
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(out), "--reference", str(ref)])
    assert r.exit_code == 2, r.output  # some failed, the rest done
    assert "done 3, skipped 0" in r.output and "failed 1" in r.output and "broken.png" in r.output
    assert sorted(_digest(out)) == ["a/x0.png", "a/x2.png", "b/c/x1.png", "denoise_metrics.csv"]
    assert _digest(src) == before  # inputs byte-for-byte unchanged
    lines = (out / "denoise_metrics.csv").read_text().splitlines()
    assert lines[0].startswith("path,psnr_input,psnr_output") and lines[-1].startswith("mean,")
    outputs = {k: v for k, v in _digest(out).items() if k.endswith(".png")}
    r2 = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(out)])
    assert "done 0, skipped 3" in r2.output
    assert {k: v for k, v in _digest(out).items() if k.endswith(".png")} == outputs
    assert _digest(src) == before


def test_refuses_output_inside_input_and_rgb_model_on_gray(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo("camera")[:32, :32]).save(src / "g.png")
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(src / "out")])
    assert r.exit_code == 1 and "inside it" in r.output
    rgb = Denoiser.load(untrained_model(tmp_path / "rgb.safetensors", channels=3))
    with pytest.raises(DataError, match="RGB denoiser cannot denoise a grayscale"):
        rgb.denoise(photo("camera")[:32, :32])


def test_fit_cli_on_a_folder_of_mixed_sizes_and_depths(tmp_path: Path) -> None:
    src = tmp_path / "clean"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(photo("coins")[:100, :140]).save(src / "coins.png")
    Image.fromarray(photo("moon")[:90, :70].astype(np.uint16) * 257).save(src / "sub" / "moon16.png")
    (src / "sub" / "bad.png").write_bytes(b"garbage")
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", "--task", "denoise", str(src), "--out", str(out), "--epochs", "1",
                            "--noise", "gaussian", "--noise", "speckle", "--set", "model.widths=[8,16]",
                            "--set", "denoise.patch_size=32", "--set", "denoise.crops_per_image=4"])
    assert r.exit_code == 0, r.output
    from aedetect.core.modelfile.file import load_model

    mf = load_model(out / "model.safetensors")
    assert mf.config.task == "denoise" and mf.config.model.skip and mf.config.model.residual
    assert mf.config.denoise["noise"] == ["gaussian", "speckle"] and list(mf.config.data.size) == [32, 32]
    bad = runner.invoke(app, ["fit", "--task", "denoise", str(src), "--noise", "pink", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 64 and "denoise.noise: 'pink' is not one of" in bad.output
