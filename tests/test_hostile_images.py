"""Files that hold more than one image, or declare more pixels than anyone should decode
(issue 11, items 4 and 9): one warning each and a skip, decided from the header."""

from __future__ import annotations

import importlib.util
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import save_png

from aedetect.cli import app
from aedetect.data.io import ImageReadError, read_image
from aedetect.errors import ConfigError

runner = CliRunner()
BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load_makers():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("hostile_files", BENCH / "_hostile_files.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


hf = _load_makers()


@pytest.mark.parametrize("pages", [2, 3, 4])
def test_a_multi_page_tiff_is_refused_not_read_as_colour(pages: int, tmp_path: Path) -> None:
    path = hf.multipage_tiff(tmp_path / f"stack{pages}.tif", pages)
    with pytest.raises(ImageReadError, match=f"multi-page TIFF \\({pages} pages\\)"):
        read_image(path)


def test_single_page_rgb_and_planar_tiffs_still_read_as_colour(tmp_path: Path) -> None:
    import tifffile

    rgb = np.stack([hf.camera(top=100 + 20 * i) for i in range(3)], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    for name in ("rgb.tif", "planar.tif"):
        arr, info = read_image(tmp_path / name)
        assert arr.shape == (32, 32, 3) and info.channels == 3 and np.array_equal(arr, rgb)


@pytest.mark.parametrize("ext", ["png", "webp"])
def test_animated_png_and_webp_are_refused(ext: str, tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=f"animated {ext.upper()} \\(3 frames\\)"):
        read_image(hf.animated(tmp_path / f"anim.{ext}"))


def _cost(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds, peak traced MB) of ``fn()``; numpy's buffers are traced too."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return seconds, peak


@pytest.mark.parametrize("maker", ["tiff", "png16-rgb", "png8-gray"])
def test_a_header_declaring_30000x30000_is_skipped_cheaply(maker: str, tmp_path: Path) -> None:
    path = {"tiff": lambda: hf.huge_tiff(tmp_path / "big.tif"),
            "png16-rgb": lambda: hf.huge_png(tmp_path / "big.png"),
            "png8-gray": lambda: hf.huge_png(tmp_path / "big8.png", bit_depth=8, colour_type=0)}[maker]()
    assert path.stat().st_size < 2000

    def read() -> None:
        with pytest.raises(ImageReadError, match="declares 30000x30000 = 900,000,000 pixels, over the limit"):
            read_image(path)

    seconds, peak_mb = _cost(read)
    assert seconds < 1.0 and peak_mb < 5.0, (seconds, peak_mb)  # before: 5.2 GB (TIFF), 3.3 GB and 88 s (PNG)


def test_the_pixel_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    path = tmp_path / "small.png"
    save_png(path, hf.camera())  # 32 x 32 = 1,024 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored afterwards
    monkeypatch.setenv("AEDETECT_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="1,024 pixels, over the limit of 1,000"):
        read_image(path)
    monkeypatch.setenv("AEDETECT_MAX_IMAGE_PIXELS", "0")  # no limit
    assert read_image(path)[0].shape == (32, 32, 1)
    monkeypatch.setenv("AEDETECT_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ConfigError, match="AEDETECT_MAX_IMAGE_PIXELS"):
        read_image(path)


def test_fit_skips_each_bad_file_with_one_warning(digit_folder: Path, tmp_path: Path) -> None:
    bad = {"stack.tif": hf.multipage_tiff(digit_folder / "stack.tif", 3),
           "anim.webp": hf.animated(digit_folder / "anim.webp"),
           "big.tif": hf.huge_tiff(digit_folder / "big.tif"),
           "big.png": hf.huge_png(digit_folder / "big.png")}
    r = runner.invoke(app, ["fit", str(digit_folder), "--preset", "small", "--epochs", "1", "--size", "16",
                            "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "5 unreadable skipped" in r.output  # the four above and the fixture's broken.png
    lines = r.output.splitlines()
    for name in bad:
        assert sum(name in line and line.startswith("warning:") for line in lines) == 1, (name, r.output)
    assert "Traceback" not in r.output
