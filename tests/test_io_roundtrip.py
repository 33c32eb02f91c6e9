"""`aedetect denoise` keeps each file's format, mode, bit depth, shape and alpha channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from aedetect.core.modelfile.file import save_model
from aedetect.cli import app
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.presets import build_config

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


def _png16(path: Path, a: np.ndarray) -> None:
    """A 16-bit multi-channel PNG written by pypng (as another program would write it)."""
    import png

    h, w, c = a.shape
    with open(path, "wb") as f:
        png.Writer(w, h, greyscale=c == 2, alpha=c in (2, 4), bitdepth=16).write(f, a.reshape(h, w * c))


def test_16bit_colour_png_keeps_every_bit(tmp_path: Path, gray_model: Path) -> None:
    """Pillow reads and writes 16-bit RGB(A) PNG as 8-bit; aedetect reads and writes them whole."""
    from aedetect.data.io import ImageInfo, is_png16_multichannel, read_image, write_image_atomic

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    # Low bits that an 8-bit round trip would lose (not multiples of 257).
    rgb16 = _photo_rgb().astype(np.uint16) * 257 + np.arange(80, dtype=np.uint16)[None, :, None]
    alpha16 = np.tile(np.arange(80, dtype=np.uint16)[None, :] * 800 + 7, (64, 1))
    _png16(src / "rgb16.png", rgb16)
    _png16(src / "rgba16.png", np.dstack([rgb16, alpha16]))
    _png16(src / "gray_alpha16.png", np.dstack([rgb16[:, :, 0], alpha16]))
    with Image.open(src / "rgb16.png") as im:
        assert np.array(im).dtype == np.uint8  # what Pillow alone would give
    arr, info = read_image(src / "rgb16.png")
    assert info.dtype == "uint16" and np.array_equal(arr, rgb16)
    for c, name in ((2, "gray_alpha16.png"), (4, "rgba16.png")):
        a, _ = read_image(src / name)
        assert a.shape == (64, 80, c) and np.array_equal(a[:, :, -1], alpha16)
        write_image_atomic(tmp_path / f"copy_{name}", a, ImageInfo(format="PNG", dtype="uint16", channels=c))
        assert np.array_equal(read_image(tmp_path / f"copy_{name}")[0], a)  # bit-exact round trip

    r = runner.invoke(app, ["denoise", str(gray_model), str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name, c in (("rgb16.png", 3), ("rgba16.png", 4), ("gray_alpha16.png", 2)):
        assert is_png16_multichannel(out / name), name
        a, info = read_image(out / name)
        assert a.dtype == np.uint16 and a.shape == (64, 80, c), (name, a.dtype, a.shape)
        assert (a[:, :, 0] % 257 != 0).any(), name  # full 16-bit range, not 8-bit values scaled
        if c in (2, 4):
            assert np.array_equal(a[:, :, -1], alpha16), name  # alpha passes through untouched
