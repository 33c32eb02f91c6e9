"""`aedetect denoise` keeps each file's format, mode, bit depth, shape and alpha channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from aedetect.checkpoint import save_model
from aedetect.cli import app
from aedetect.models.cae import ConvAutoencoder
from aedetect.presets import build_config

runner = CliRunner()


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = build_config("denoise-unet", overrides={"model": {"widths": [8, 16], "convs_per_level": 1}})
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "gray.safetensors"
    save_model(path, ConvAutoencoder(cfg.model), cfg)
    return path


def _photo_rgb() -> np.ndarray:
    import skimage.data as skd

    return skd.astronaut()[100:164, 150:230]


CASES = {
    "gray8.png": ("L", np.uint8, (64, 80)),
    "gray16.png": ("I;16", np.uint16, (64, 80)),
    "gray16.tif": (None, np.uint16, (64, 80)),
    "rgb.jpg": ("RGB", np.uint8, (64, 80, 3)),
    "rgba.png": ("RGBA", np.uint8, (64, 80, 4)),
    "gray.bmp": ("L", np.uint8, (64, 80)),
    "rgb.webp": ("RGB", np.uint8, (64, 80, 3)),
}


def _write_inputs(root: Path) -> np.ndarray:
    rgb = _photo_rgb()
    gray = rgb.mean(axis=2).astype(np.uint8)
    alpha = np.tile(np.arange(80, dtype=np.uint8)[None, :] * 3, (64, 1))
    Image.fromarray(gray).save(root / "gray8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(root / "gray16.png")
    tifffile.imwrite(root / "gray16.tif", gray.astype(np.uint16) * 257)
    Image.fromarray(rgb).save(root / "rgb.jpg", quality=92)
    Image.fromarray(np.dstack([rgb, alpha])).save(root / "rgba.png")
    Image.fromarray(gray).save(root / "gray.bmp")
    Image.fromarray(rgb).save(root / "rgb.webp")
    return alpha


def test_round_trip_keeps_format_mode_dtype_shape_and_alpha(tmp_path: Path, gray_model: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    alpha = _write_inputs(src)
    r = runner.invoke(app, ["denoise", str(gray_model), str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name, (mode, dtype, shape) in CASES.items():
        if name.endswith(".tif"):
            a = tifffile.imread(out / name)
        else:
            with Image.open(out / name) as im, Image.open(src / name) as im_in:
                assert im.format == im_in.format, name
                assert im.mode == mode, (name, im.mode)
                a = np.array(im)
        assert a.dtype == dtype and a.shape == shape, (name, a.dtype, a.shape)
    with Image.open(out / "rgba.png") as im:
        assert np.array_equal(np.array(im)[:, :, 3], alpha)
    # 16-bit outputs use the full 16-bit range (not 8-bit values stored in 16 bits).
    g16 = np.array(Image.open(out / "gray16.png"))
    assert (g16 % 257 != 0).any()
