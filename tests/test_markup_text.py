"""Text from the user (paths, file names, model metadata) reaches rich markup through one
door, util.progress.plain: shown literally, never parsed (issue 27, item 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from conftest import rewrite_model_meta, untrained_model

from aedetect.cli import app
from aedetect.core.modelfile.header import RECORD_KEY, record_digest
from aedetect.util.progress import plain

runner = CliRunner()


def test_plain_shows_markup_like_text_literally() -> None:
    from rich.console import Console

    c = Console(record=True, width=200)
    for text in ("out[/x]", "a[bold]b.png", "[link=http://x]y[/link]", "caf\udce9.png"):
        c.print(plain(text))
    assert c.export_text().splitlines() == ["out[/x]", "a[bold]b.png", "[link=http://x]y[/link]", "caf\\xe9.png"]


def test_score_with_a_markup_like_out_prints_its_table(tmp_path: Path, model_file: Path, digits_uint8) -> None:  # type: ignore[no-untyped-def]
    images, _ = digits_uint8
    data = tmp_path / "d[/x]"  # a folder "d[" holding "x]": a path, not only a name, can hold [/x]
    (data / "a[").mkdir(parents=True)
    Image.fromarray(images[0]).resize((16, 16), Image.NEAREST).save(data / "a[/x]b.png")
    out = tmp_path / "out[/x]"
    r = runner.invoke(app, ["score", str(model_file), str(data), "--out", str(out), "--no-report"])
    assert r.exit_code == 0 and f"aedetect score: {out}" in " ".join(r.output.split()), r.output


def test_denoise_reference_with_a_markup_like_name(tmp_path: Path) -> None:
    src, ref = tmp_path / "in", tmp_path / "ref"
    src.mkdir()
    ref.mkdir()
    for d in (src, ref):
        (d / "a[").mkdir()
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(d / "a[/x]b.png")
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(tmp_path / "o[/x]"), "--reference", str(ref)])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "a[/x]b.png" in r.output and "done 1" in r.output


def test_info_shows_a_model_whose_metadata_holds_markup(tmp_path: Path) -> None:
    (tmp_path / "m[").mkdir()
    model = untrained_model(tmp_path / "m[/x].safetensors")

    def edit(m):  # type: ignore[no-untyped-def]
        m["training"] = {"data": "data[/x]", "note": "[bold]"}
        m[RECORD_KEY] = record_digest(m)
    rewrite_model_meta(model, edit)
    r = runner.invoke(app, ["info", str(model)])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "data[/x]" in r.output and "[bold]" in r.output and "x].safetensors" in r.output
