"""Denoised images keep what the photo carried beside its pixels: EXIF (the orientation tag
included), the ICC profile and the DPI; a lossless WebP stays lossless (issue 27, item 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from conftest import untrained_model

from aedetect.cli import app
from aedetect.data.io import read_image, webp_is_lossless
from aedetect.denoise.demo import photo

runner = CliRunner()


def _rgb() -> np.ndarray:
    g = photo("camera")[100:132, 200:248]
    return np.stack([g, g // 2 + 60, 255 - g], axis=2)


def _exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation  # Orientation: 6 = turn 90 degrees clockwise to show
    e[0x010F] = "aedetect-test-camera"  # Make
    return e.tobytes()


@pytest.fixture(scope="module")
def srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("ext,fmt", [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WEBP")])
def test_denoise_keeps_exif_orientation_icc_and_dpi(tmp_path: Path, srgb: bytes, ext: str, fmt: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    opts = {"exif": _exif(6), "icc_profile": srgb}
    if fmt != "WEBP":
        opts["dpi"] = (300, 300)
    Image.fromarray(_rgb()).save(src / f"p{ext}", format=fmt, **opts)
    model = untrained_model(tmp_path / "m.safetensors", channels=3)
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "out" / f"p{ext}") as im:
        assert im.getexif().get(0x0112) == 6 and im.getexif().get(0x010F) == "aedetect-test-camera"
        assert im.info.get("icc_profile") == srgb
        if fmt != "WEBP":
            assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)
    _, info = read_image(tmp_path / "out" / f"p{ext}")
    assert info.exif is not None and info.icc_profile == srgb


def test_a_lossless_webp_stays_lossless(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_rgb()).save(src / "l.webp", lossless=True)
    Image.fromarray(_rgb()).save(src / "q.webp", quality=80)
    assert webp_is_lossless(src / "l.webp") and not webp_is_lossless(src / "q.webp")
    model = untrained_model(tmp_path / "m.safetensors", channels=3)
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert webp_is_lossless(tmp_path / "out" / "l.webp") and not webp_is_lossless(tmp_path / "out" / "q.webp")
