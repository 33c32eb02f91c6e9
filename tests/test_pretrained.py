"""The shipped denoiser, ``pretrained:gray``: loads from the package with no network, denoises a
bundled held-out photograph, follows its noise-level input, and is described by ``info``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from aedetect.cli import app
from aedetect.core.modelfile.info import describe
from aedetect.core.pretrained import resolve_model_path, shipped
from aedetect.denoise.demo import noisy_version, photo, psnr8
from aedetect.denoise.denoiser import Denoiser
from aedetect.errors import ModelFileError

runner = CliRunner()


@pytest.fixture(scope="module")
def gray() -> Denoiser:
    return Denoiser.load("pretrained:gray", device="cpu")


def test_shipped_file_is_inside_the_package_and_small() -> None:
    path = resolve_model_path("pretrained:gray")
    assert "gray" in shipped() and path.parent.name == "pretrained" and path.parent.parent.name == "aedetect"
    assert path.stat().st_size < 5_000_000
    with pytest.raises(ModelFileError, match="pretrained:nope: no such shipped model .*pretrained:gray"):
        resolve_model_path("pretrained:nope")


def test_pretrained_gray_denoises_a_held_out_photo(gray: Denoiser) -> None:
    """camera (Set12's 01.png, not in Train400), 256x256, noisy 8-bit file at sigma 25: the
    stated margin is +7 dB over the noisy input, with the true sigma and with --sigma auto
    (measured: 20.72 dB noisy, 29.02 denoised given sigma 25, 28.96 with the estimate)."""
    clean = photo("camera")[128:384, 128:384]
    noisy = noisy_version(clean, 25.0)
    gray.sigma = 25.0
    given = psnr8(gray.denoise(noisy), clean)
    gray.sigma = "auto"
    auto = psnr8(gray.denoise(noisy), clean)
    base = psnr8(noisy, clean)
    assert given > base + 7.0 and auto > base + 7.0, (base, given, auto)
    assert abs(given - auto) < 0.5


def test_a_higher_noise_level_input_gives_a_smoother_output(gray: Denoiser) -> None:
    """The same noisy input (sigma 25) told sigma 5, 15, 25, 50, 75: the output's mean absolute
    gradient falls every time (measured: 0.201, 0.116, 0.040, 0.028, 0.025)."""
    clean = photo("camera")[128:384, 128:384]
    x = torch.from_numpy(noisy_version(clean, 25.0) / 255.0).float()[None, None]

    def tv(y: torch.Tensor) -> float:
        return float((y[..., 1:, :] - y[..., :-1, :]).abs().mean() + (y[..., :, 1:] - y[..., :, :-1]).abs().mean())

    variations = [tv(gray.denoise_tensor(x, sigma=s)) for s in (5.0, 15.0, 25.0, 50.0, 75.0)]
    assert all(a > b for a, b in zip(variations, variations[1:])), variations


def test_info_shows_how_the_shipped_model_was_trained() -> None:
    d = describe("pretrained:gray")
    assert d["source"] == "shipped model" and d["task"] == "denoise"
    assert d["config"]["model"]["noise_map"] is True
    assert "Train400" in d["training"]["data"] and d["training"]["images_seen"] > 0
    r = runner.invoke(app, ["info", "pretrained:gray"])
    assert r.exit_code == 0 and "noise_map" in r.output


def test_denoise_cli_with_the_shipped_model(tmp_path) -> None:
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    clean = photo("camera")[:128, :128]
    Image.fromarray(noisy_version(clean, 25.0)).save(src / "a.png")
    r = runner.invoke(app, ["denoise", "pretrained:gray", str(src), "--out", str(tmp_path / "out"), "--sigma", "25"])
    assert r.exit_code == 0, r.output
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert out.dtype == np.uint8 and psnr8(out, clean) > psnr8(noisy_version(clean, 25.0), clean) + 5
    bad = runner.invoke(app, ["denoise", "pretrained:gray", str(src), "--out", str(tmp_path / "o2"), "--sigma", "x"])
    assert bad.exit_code == 64 and "--sigma: 'x' is neither 'auto' nor a number" in bad.output
