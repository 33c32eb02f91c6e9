"""One way to make a file name: bounded in bytes, unique within a run, stable; temporaries
that a clean-up can tell from a user's files (issue 27, items 2, 3 and 6)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import untrained_model

from aedetect.cli import app
from aedetect.util.fsutil import write_text_atomic
from aedetect.util.names import (MAX_NAME_BYTES, RunNames, output_name, parse_temp_name, safe_part,
                                 temp_name)
from aedetect.util.outdir import remove_orphans

runner = CliRunner()
LONG = "p" * 236 + ".png"  # a legal name: 240 bytes


def _dead_pid() -> int:
    p = subprocess.Popen(["sleep", "60"])
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return p.pid


def test_names_that_sanitise_alike_stay_apart_and_stable() -> None:
    pairs = [("n00 x.png", "n00_x.png"), ("x (1).png", "x(1).png"), ("a:b.png", "a_b.png")]
    for a, b in pairs:
        assert output_name([a], ".png") != output_name([b], ".png")
        assert output_name([a], ".png") == output_name([a], ".png")  # the same in every run and shard
    assert output_name(["crack", "000.png"], ".png") == "crack/000.png"  # a plain name unchanged
    assert output_name(["a", "b.jpg"], ".png") == "a/b.jpg.png"


def test_long_names_are_bounded_in_bytes() -> None:
    for part in (LONG, "é" * 127 + ".png", "x" * 300):
        name = output_name([part], ".png")
        assert len(name.encode("utf-8")) <= 200 and name.endswith(".png")
        assert output_name([part[:-5] + "q" + part[-4:]], ".png") != name  # still told apart
    for final in (LONG, "é" * 127 + ".png", ".hidden" + "z" * 250):
        t = temp_name(final, 4194304)
        assert len(t.encode("utf-8")) <= MAX_NAME_BYTES and parse_temp_name(t) == 4194304
    assert temp_name("a.png", 7).endswith(".tmp.png")  # the reader picks the decoder by the suffix


def test_run_names_never_give_one_name_twice() -> None:
    names = RunNames()
    a = names.claim("x.png", "/d/x.png")
    b = names.claim("X.png", "/d/X.png")  # one file on a case-insensitive file system
    assert a == "x.png" and b != a and b.lower() != a.lower() and b.endswith(".png")
    assert names.claim("x.png", "/d/x.png") == "x.png"  # the same source keeps its name


def test_score_gives_each_image_its_own_heat_map_and_takes_long_names(tmp_path: Path, model_file: Path,
                                                                     digits_uint8) -> None:  # type: ignore[no-untyped-def]
    images, _ = digits_uint8
    data = tmp_path / "data"
    data.mkdir()
    names = ["n00 x.png", "n00_x.png", "x (1).png", "x(1).png", "N00_x.png", LONG]
    for i, n in enumerate(names):
        Image.fromarray(images[i + 1]).resize((16, 16), Image.NEAREST).save(data / n)
    out = tmp_path / "out"
    r = runner.invoke(app, ["score", str(model_file), str(data), "--out", str(out), "--all-heatmaps"])
    assert r.exit_code == 0, r.output
    maps = [p for p in (out / "heatmaps").rglob("*.png")]
    assert len(maps) == len(names) == len({p.name.lower() for p in maps})
    rows = list(csv.DictReader((out / "scores.csv").open(encoding="utf-8")))
    assert sorted(Path(r["path"]).name for r in rows) == sorted(names)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len({p.name for p in maps if p.name in html}) == len(names)  # every card links its own panel


def test_denoise_writes_a_file_with_a_240_byte_name(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(src / LONG)
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0 and "done 1" in r.output, r.output
    assert (tmp_path / "out" / LONG).is_file()


def test_clean_up_never_deletes_a_users_file(tmp_path: Path) -> None:
    """Names that merely look like temporaries (old, or with a dead pid) are the user's."""
    (tmp_path / "deep").mkdir()
    dead = _dead_pid()
    users = [tmp_path / ".thesis.abcd1234.tmp", tmp_path / "deep" / f".notes.{dead}.zz9yy8xx.tmp.txt",
             tmp_path / temp_name("a.png", dead).replace("aedetect-tmp", "aedetect-tmq")]
    forged = temp_name("b.png", dead)
    users.append(tmp_path / (forged[:-12] + ("0" if forged[-12] != "0" else "1") + forged[-11:]))  # tag off by one
    for u in users:
        u.write_text("mine")
        os.utime(u, (time.time() - 7200, time.time() - 7200))  # two hours old
    ours = tmp_path / "deep" / temp_name("c.png", dead)
    ours.write_bytes(b"half")
    assert remove_orphans(tmp_path) == [ours]
    assert all(u.read_text() == "mine" for u in users)
    write_text_atomic(tmp_path / "deep" / LONG, "ok")  # a 240-byte output name has room for its temporary
    assert (tmp_path / "deep" / LONG).read_text() == "ok"


@pytest.mark.parametrize("part", [".", "..", ""])
def test_no_part_names_a_folder_above(part: str) -> None:
    assert safe_part(part) not in (".", "..", "")
