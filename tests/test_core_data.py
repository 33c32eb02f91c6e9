"""Decoding, channel and bit-depth rules, layouts, datasets by name, bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from aedetect.core.config import DataConfig
from aedetect.data.imageset import convert_channels, fit_size
from aedetect.data.io import ImageReadError, read_image
from aedetect.data.sources import load_folder, load_training_data
from aedetect.errors import DataError


def test_folder_is_recursive_and_skips_the_corrupt_file(digit_folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aedetect"):
        s = load_folder(digit_folder, DataConfig(channels=1))
    assert len(s) == 120 and s.shape == (1, 16, 16)
    assert s.images.dtype == torch.uint8
    assert [Path(p).name for p, _ in s.skipped] == ["broken.png"]
    assert any("broken.png" in r.getMessage() for r in caplog.records)


def test_no_usable_image_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 1 image files could be read"):
        load_folder(tmp_path, DataConfig())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no image files found"):
        load_folder(empty, DataConfig())
    with pytest.raises(DataError, match="no such file or folder, and not a dataset name"):
        load_training_data(str(tmp_path / "missing"), DataConfig())


def test_truncated_png_is_rejected_at_decode(tmp_path: Path) -> None:
    p = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ImageReadError):
        read_image(p)


def test_16_bit_images_are_scaled_by_65535(tmp_path: Path) -> None:
    a = np.full((8, 8), 65535 // 4, dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "b.tif", np.full((8, 8), 65535, dtype=np.uint16))
    s = load_folder(tmp_path, DataConfig(channels=1))
    assert s.max_value == 65535.0
    vals = sorted(float(s.to_float(s.images[i:i + 1], "unit").mean()) for i in range(2))
    assert vals == pytest.approx([0.25, 1.0], abs=1e-4)


def test_channel_rule() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    assert convert_channels(rgb, 1)[0, 0, 0] == round(0.299 * 255)  # ITU-R 601 luma, like PIL 'L'
    assert convert_channels(np.full((2, 2, 1), 7, np.uint8), 3).tolist() == [[[7] * 3] * 2] * 2
    rgba = np.dstack([rgb, np.full((2, 2), 9, np.uint8)])
    assert convert_channels(rgba, 3).shape == (2, 2, 3)  # alpha dropped


def test_size_policies() -> None:
    x = torch.arange(100, dtype=torch.uint8).reshape(1, 10, 10)
    assert fit_size(x, (4, 6), "resize").shape == (1, 4, 6)
    assert torch.equal(fit_size(x, (4, 4), "center_crop"), x[:, 3:7, 3:7])
    assert fit_size(x, (12, 12), "pad_crop").shape == (1, 12, 12)
    with pytest.raises(ValueError, match="policy is 'none'"):
        fit_size(x, (4, 4), "none")


def test_mvtec_layout_trains_on_train_good(tmp_path: Path) -> None:
    for sub, n in (("train/good", 5), ("test/good", 2), ("test/crack", 3)):
        d = tmp_path / sub
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(d / f"{i:03d}.png")
    s = load_folder(tmp_path, DataConfig(channels=1, size=(8, 8)))
    assert len(s) == 5 and s.shape == (1, 8, 8)
    assert all("/train/good/" in p for p in s.paths)


def test_mnist_by_name_reads_local_files_and_keeps_the_normal_class(shared_data: Path) -> None:
    s = load_training_data("mnist", DataConfig(channels=1), normal_class=3, data_root=str(shared_data))
    assert s.shape == (1, 28, 28)
    assert 6000 < len(s) < 6300  # 6,131 training images of digit 3
    assert set(s.classes.tolist()) == {3}


def test_digits_and_textures_by_name() -> None:
    d = load_training_data("digits", DataConfig(channels=1), normal_class=0)
    assert len(d) == 178 and d.shape == (1, 8, 8)
    t = load_training_data("texture:brick", DataConfig(channels=1, size=(32, 32)))
    assert t.shape == (1, 32, 32) and len(t) > 100


def test_split_is_deterministic(digits_uint8: tuple) -> None:
    s = load_training_data("digits", DataConfig(channels=1))
    a1, b1 = s.split(0.2, seed=5)
    a2, b2 = s.split(0.2, seed=5)
    assert torch.equal(a1.images, a2.images) and torch.equal(b1.images, b2.images)
    assert len(b1) == round(0.2 * len(s)) and len(a1) + len(b1) == len(s)
    _, b3 = s.split(0.2, seed=6)
    assert not torch.equal(b1.images, b3.images)


def test_default_size_follows_the_data_up_to_max_side(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: the default preset brought 28x28 images up to 128x128 (25 min an epoch on a
    CPU). Now the size is the folder's most common one, scaled down to 256 on its longer side."""
    import numpy as np
    from PIL import Image

    from aedetect.core.presets import build_config
    from aedetect.data.imageset import capped_size
    from aedetect.data.sources import load_folder

    cfg = build_config()
    assert cfg.data.size is None and cfg.data.max_side == 256
    small = tmp_path / "small"
    small.mkdir()
    for i in range(3):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(small / f"{i}.png")
    assert tuple(load_folder(small, cfg.data).images.shape[-2:]) == (28, 28)
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((600, 400), np.uint8)).save(big / "a.png")
    assert tuple(load_folder(big, cfg.data).images.shape[-2:]) == (256, 171)
    assert capped_size((600, 400), 0) == (600, 400)
