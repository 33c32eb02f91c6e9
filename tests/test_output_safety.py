"""Nothing a user owns is written over, and no incomplete file is left under its final name
(issue 11, items 1 and 2). Real images: scikit-image's camera photograph."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import untrained_model

import aedetect.data.io as imageio
from aedetect.cli import app
from aedetect.data.io import ImageInfo, read_image, write_image_atomic
from aedetect.denoise.demo import noisy_version, photo
from aedetect.errors import OutputError, OutputExistsError
from aedetect.util.fsutil import atomic_path, write_text_atomic

runner = CliRunner()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(model, noisy input folder, clean reference folder) with two camera crops."""
    src, ref = tmp_path / "in", tmp_path / "clean"
    src.mkdir()
    ref.mkdir()
    clean = photo("camera")[100:148, 200:264]
    for i in range(2):
        Image.fromarray(clean).save(ref / f"x{i}.png")
        Image.fromarray(noisy_version(clean, 20, seed=i)).save(src / f"x{i}.png")
    return untrained_model(tmp_path / "m.safetensors"), src, ref


# ---- item 1: the metrics CSV obeys the no-overwrite rule ------------------------------------
def test_csv_pointing_at_an_input_image_is_refused_and_the_image_unchanged(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, src, ref = pair
    victim = src / "x0.png"
    before = _sha(victim)
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(tmp_path / "out"),
                            "--reference", str(ref), "--csv", str(victim)])
    assert r.exit_code == 1 and "inside the input" in r.output, r.output
    assert _sha(victim) == before and read_image(victim)[0].shape == (48, 64, 1)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_csv_inside_the_input_tree_is_refused_even_if_new(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, src, ref = pair
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(tmp_path / "out"),
                            "--reference", str(ref), "--csv", str(src / "sub" / "m.csv")])
    assert r.exit_code == 1 and "inside the input" in r.output, r.output
    assert sorted(p.name for p in src.rglob("*")) == ["x0.png", "x1.png"]


def test_existing_csv_is_kept_unless_overwrite(pair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, src, ref = pair
    mine = tmp_path / "notes.csv"
    mine.write_text("my,own,data\n")
    args = ["denoise", str(model), str(src), "--out", str(tmp_path / "out"), "--reference", str(ref), "--csv", str(mine)]
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "already exists" in r.output and "--overwrite" in r.output, r.output
    assert mine.read_text() == "my,own,data\n"
    r = runner.invoke(app, args + ["--overwrite"])
    assert r.exit_code == 0, r.output
    assert mine.read_text().startswith("path,psnr_input,psnr_output")


def test_atomic_path_without_overwrite_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    target.write_text("original")
    with pytest.raises(OutputExistsError, match="already exists"):
        write_text_atomic(target, "new", overwrite=False)
    # Created by someone else while the block ran: still not replaced (checked at the rename).
    late = tmp_path / "late.txt"
    with pytest.raises(OutputExistsError):
        with atomic_path(late, overwrite=False) as tmp:
            Path(tmp).write_text("ours")
            late.write_text("theirs")
    assert target.read_text() == "original" and late.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.txt", "t.txt"]  # no temp file left


# ---- item 2: complete before the rename -----------------------------------------------------
def _fail_part_way(real):  # type: ignore[no-untyped-def]
    """A writer that writes half of what the real one would, then hits a full disk."""
    def writer(tmp: str, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        real(tmp, *args, **kwargs)
        data = Path(tmp).read_bytes()
        Path(tmp).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return writer


def _truncate_silently(real):  # type: ignore[no-untyped-def]
    """A writer that stops half-way without an error (what a full disk did to JPEG outputs)."""
    def writer(tmp: str, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        real(tmp, *args, **kwargs)
        data = Path(tmp).read_bytes()
        Path(tmp).write_bytes(data[: len(data) // 2])
    return writer


CASES = {  # format, dtype, channels
    "png8": ("PNG", np.uint8, 1), "jpeg": ("JPEG", np.uint8, 3), "tiff16": ("TIFF", np.uint16, 3),
    "png16-rgb": ("PNG", np.uint16, 3), "webp": ("WEBP", np.uint8, 3), "bmp": ("BMP", np.uint8, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("failure", [_fail_part_way, _truncate_silently], ids=["raises", "silent"])
def test_a_writer_failing_part_way_leaves_no_file_and_one_error(case: str, failure, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fmt, dtype, ch = CASES[case]
    img = photo("camera")[:40, :56].astype(dtype)
    if dtype == np.uint16:
        img = img * 257
    arr = np.repeat(img[:, :, None], ch, 2)
    info = ImageInfo(format=fmt, dtype=np.dtype(dtype).name, channels=ch)
    target = tmp_path / f"out.{fmt.lower()}"
    real = imageio._write
    monkeypatch.setattr(imageio, "_write", failure(real))
    with pytest.raises(OutputError) as e:
        write_image_atomic(target, arr, info)
    assert str(target) in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # neither the final name nor a temp file
    monkeypatch.setattr(imageio, "_write", real)
    write_image_atomic(target, arr, info)  # the re-run writes it
    back, _ = read_image(target)
    assert back.shape[:2] == arr.shape[:2] and back.dtype == dtype


def test_denoise_on_a_full_disk_reports_the_file_and_the_rerun_completes(pair, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model, src, _ = pair
    out = tmp_path / "out"
    real = imageio._write
    monkeypatch.setattr(imageio, "_write", _truncate_silently(real))
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(out)])
    assert r.exit_code == 1 and "failed 2" in r.output and "does not decode" in r.output, r.output
    assert not any(p.is_file() for p in out.rglob("*")) if out.exists() else True
    monkeypatch.setattr(imageio, "_write", real)
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(out)])
    assert r.exit_code == 0 and "done 2, skipped 0" in r.output, r.output
    assert all(read_image(out / f"x{i}.png")[0].shape == (48, 64, 1) for i in range(2))


def test_an_empty_text_write_is_not_renamed_into_place(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="empty file"):
        with atomic_path(tmp_path / "m.json") as tmp:
            Path(tmp).write_bytes(b"")
    assert list(tmp_path.iterdir()) == []
