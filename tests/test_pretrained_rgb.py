"""The shipped colour denoiser, ``pretrained:rgb``, and ``pretrained`` (one name for the gray and
the colour model): a colour photograph goes to the colour model, which beats the gray model run
channel by channel on it; a gray photograph goes to the gray model; a gray model on colour
images says so once; the pair's name elsewhere is one clear line."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aedetect.cli import app
from aedetect.denoise.demo import noisy_version, photo, psnr8
from aedetect.denoise.denoiser import Denoiser

runner = CliRunner()


def chelsea() -> np.ndarray:
    """scikit-image's cat, a colour photograph in neither BSDS400 nor Train400, 192x192x3."""
    import skimage.data

    return skimage.data.chelsea()[40:232, 100:292]


@pytest.fixture(scope="module")
def pair() -> Denoiser:
    return Denoiser.load("pretrained", device="cpu", sigma=25.0)


def test_a_colour_photo_goes_to_the_colour_model_which_beats_the_gray_one_per_channel(
        pair: Denoiser, caplog: pytest.LogCaptureFixture) -> None:
    """Sigma 25, a noisy 8-bit file (measured: noisy 20.31 dB, per channel 28.49, colour 29.62)."""
    clean = chelsea()
    noisy = noisy_version(clean, 25.0)
    colour = pair.denoise(noisy)
    assert colour.shape == clean.shape and colour.dtype == np.uint8
    gray = Denoiser.load("pretrained:gray", device="cpu", sigma=25.0)
    with caplog.at_level(logging.WARNING, logger="aedetect"):
        per_channel = gray.denoise(noisy)
        gray.denoise(noisy)
    assert caplog.text.count("each channel is denoised as its own gray image") == 1
    base, per, col = psnr8(noisy, clean), psnr8(per_channel, clean), psnr8(colour, clean)
    assert col > per + 0.5 and per > base + 6.0, (base, per, col)


def test_a_gray_photo_goes_to_the_gray_model(pair: Denoiser) -> None:
    noisy = noisy_version(photo("camera")[128:320, 128:320], 25.0)
    gray = Denoiser.load("pretrained:gray", device="cpu", sigma=25.0)
    assert np.array_equal(pair.denoise(noisy), gray.denoise(noisy))


def test_the_pair_follows_its_own_settings() -> None:
    """``sigma`` set on the pair after loading reaches the colour model too."""
    noisy = noisy_version(chelsea(), 25.0)
    pair = Denoiser.load("pretrained", device="cpu", sigma=5.0)
    rgb = Denoiser.load("pretrained:rgb", device="cpu", sigma=25.0)
    pair.sigma = 25.0
    assert np.array_equal(pair.denoise(noisy), rgb.denoise(noisy))


def test_one_command_cleans_a_folder_of_gray_and_colour_files(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    g_clean, c_clean = photo("camera")[128:320, 128:320], chelsea()
    Image.fromarray(noisy_version(g_clean, 25.0)).save(inp / "gray.png")
    Image.fromarray(noisy_version(c_clean, 25.0)).save(inp / "colour.png")
    r = runner.invoke(app, ["denoise", "pretrained", str(inp), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    g, c = Image.open(tmp_path / "out" / "gray.png"), Image.open(tmp_path / "out" / "colour.png")
    assert g.mode == "L" and c.mode == "RGB"
    assert psnr8(np.asarray(g), g_clean) > psnr8(noisy_version(g_clean, 25.0), g_clean) + 6.0
    assert psnr8(np.asarray(c), c_clean) > psnr8(noisy_version(c_clean, 25.0), c_clean) + 8.0


def test_the_pair_name_elsewhere_is_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["info", "pretrained"])
    assert r.exit_code != 0
    assert "names the shipped gray and colour denoisers together" in r.output
    assert "Traceback" not in r.output
