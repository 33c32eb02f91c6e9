"""aedetect inspect: every picture written with the expected grid size, interpolation ends,
hooks before/after the activation, models that cannot decode from a code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from aedetect.core.modelfile.file import load_model, save_model
from aedetect.cli import app
from aedetect.core.config import DataConfig
from aedetect.data.sources import load_digits
from aedetect.core.training.fit import fit
from aedetect.inspect import PICTURES, inspect_model
from aedetect.core.model.codes import interpolate, why_no_decode
from aedetect.inspect.probe import probe, tile_grid_size
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.presets import build_config


def tiny_cfg(**model):  # type: ignore[no-untyped-def]
    return build_config("small", overrides={"model": {"widths": [8, 16], **model}, "data": {"size": [8, 8]},
                                            "train": {"epochs": 2, "batch_size": 64, "max_images": 400,
                                                      "device": "cpu", "lr": 3e-3}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CAE trained for two epochs on 400 scikit-learn digits (by name, so DATA defaults)."""
    out = tmp_path_factory.mktemp("fit") / "run"
    return fit("digits", tiny_cfg(), out).model_path


@pytest.fixture(scope="module")
def digits() -> object:
    return load_digits(DataConfig(channels=1, size=(8, 8)))


def png_size(p: Path) -> tuple[int, int]:
    with Image.open(p) as im:
        return im.size  # (width, height)


def test_inspect_writes_every_picture_with_expected_grids(trained: Path, tmp_path: Path) -> None:
    res = inspect_model(trained, None, tmp_path / "insp", index=3, steps=16)  # DATA defaults to digits
    files = res.files()
    assert set(files) == set(PICTURES)
    # filters: 8 first-layer 3x3 filters, upscaled x11 to 33 px, 3x3 grid with 2 px padding
    h, w = tile_grid_size(8, 33, 33)
    assert png_size(files["filters"]) == (w, h) == (107, 107)
    # activations: 8 channels of 8x8 upscaled x4 -> 32 px tiles
    for name in ("activations_pre", "activations_post"):
        assert png_size(files[name]) == (104, 104)
    # decoder output: input | before | after, 8x8 upscaled to 64 px, one row
    assert png_size(files["decoder_output"]) == (3 * 66 + 2, 68)
    # inputs over reconstructions: 8 columns, 2 rows of 64 px
    assert png_size(files["reconstructions"]) == (8 * 66 + 2, 2 * 66 + 2)
    # interpolation: image A, 16 steps, image B in one row of 32 px tiles
    assert png_size(files["interpolation"]) == (18 * 34 + 2, 36)
    w_map, h_map = png_size(files["latent_map"])
    assert w_map > 200 and h_map > 200
    page = (res.out / "index.html").read_text()
    for name, f in files.items():
        assert f"src='{f.name}'" in page  # relative links: the folder opens offline
    assert not re.search(r"src='(/|[a-z]+://)", page)
    assert res.info["data"] == "digits" and res.info["images"] == 1797


def test_interpolation_endpoints_are_reconstructions(trained: Path, digits) -> None:  # type: ignore[no-untyped-def]
    model = load_model(trained).model
    a = digits.to_float(digits.images[0:1], "unit")
    b = digits.to_float(digits.images[5:6], "unit")
    strip = interpolate(model, a[0], b[0], steps=16)
    assert strip.shape == (16, 1, 8, 8)
    with torch.no_grad():
        ra, rb = model(a)[0], model(b)[0]
    torch.testing.assert_close(strip[0], ra, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(strip[-1], rb, atol=1e-5, rtol=1e-5)
    mid = strip[8]
    assert (mid - ra).abs().max() > 1e-3 and (mid - rb).abs().max() > 1e-3


def test_probe_sees_before_and_after_inplace_relu(trained: Path, digits) -> None:  # type: ignore[no-untyped-def]
    model = load_model(trained).model
    x = digits.to_float(digits.images[7:8], "unit")
    first, out, y = probe(model, x)
    assert first.before is not None and first.after is not None
    assert (first.before < 0).any(), "pre-activation maps must keep negative values"
    torch.testing.assert_close(first.after, torch.relu(first.before))
    torch.testing.assert_close(out.after, torch.sigmoid(out.before))
    torch.testing.assert_close(out.after[..., :8, :8], y)


def test_mlp_and_skip_models(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    mlp_cfg = build_config("mlp", overrides={"model": {"mlp_hidden": [32, 6]}, "data": {"size": [8, 8]}})
    mlp = ConvAutoencoder(mlp_cfg.model)
    save_model(tmp_path / "mlp.safetensors", mlp, mlp_cfg)
    res = inspect_model(tmp_path / "mlp.safetensors", digits.subset(list(range(200))), tmp_path / "m")
    files = res.files()
    assert set(files) == set(PICTURES)
    # 32 weight rows shown as 8x8 images (x4 -> 32 px): 6 columns, 6 rows
    assert png_size(files["filters"]) == (6 * 34 + 2, 6 * 34 + 2)
    # 32 first-layer units as one 6x6 tile (x6 -> 36 px); a lone tile gets no padding
    assert png_size(files["activations_pre"]) == tile_grid_size(1, 36, 36)[::-1] == (36, 36)

    unet_cfg = tiny_cfg(skip=True)
    unet = ConvAutoencoder(unet_cfg.model)
    assert why_no_decode(unet) is not None
    save_model(tmp_path / "unet.safetensors", unet, unet_cfg)
    res = inspect_model(tmp_path / "unet.safetensors", digits.subset(list(range(100))), tmp_path / "u")
    assert "interpolation" not in res.files() and len(res.files()) == len(PICTURES) - 1
    skipped = [p for p in res.pictures if p.skipped]
    assert len(skipped) == 1 and "skip connections" in skipped[0].skipped
    assert "skip connections" in (res.out / "index.html").read_text()


def test_cli_inspect(trained: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["inspect", str(trained), "digits", "--out", str(tmp_path / "c"), "--steps", "4",
                            "--tsne", "--max-points", "150"])
    assert r.exit_code == 0, r.output
    assert png_size(tmp_path / "c" / "interpolation.png") == (6 * 34 + 2, 36)
    r = runner.invoke(app, ["inspect", str(trained), "digits", "--out", str(tmp_path / "c2"), "--index", "5000"])
    assert r.exit_code == 1 and "--index" in r.output
