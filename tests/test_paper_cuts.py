"""Issue 11's paper cuts: orphaned temporary files, skipped entries warned about and counted,
outputs with the umask's mode, log lines that do not wrap when stderr is a pipe."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from test_denoise import untrained_model

from aedetect.cli import app
from aedetect.util.names import temp_name

runner = CliRunner()


def _dead_pid() -> int:
    """The pid of a process that was killed with SIGKILL, as a writer killed mid-write."""
    p = subprocess.Popen(["sleep", "60"])
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return p.pid


def _cli(*argv: str, as_user: bool = False) -> subprocess.CompletedProcess[str]:
    """``aedetect ARGV`` with stderr a pipe (not a terminal); ``as_user``: root without
    CAP_DAC_OVERRIDE, so a mode-000 folder is unreadable to it as to anyone."""
    cmd = [sys.executable, "-c", "from aedetect.cli import main; main()", *argv]
    if as_user and os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_temporary_files_of_a_killed_run_are_removed_on_the_next(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(np.full((24, 24), 90, np.uint8)).save(src / "g.png")
    model = untrained_model(tmp_path / "m.safetensors")
    (out / "sub").mkdir(parents=True)
    orphan = out / "sub" / temp_name("g.png", _dead_pid())
    orphan.write_bytes(b"half a png")
    busy = out / temp_name("g.png", os.getpid())  # a live writer's: left alone
    busy.write_bytes(b"being written")
    r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert not orphan.exists() and busy.exists()
    assert "removed 1 temporary file" in r.output
    assert (out / "g.png").is_file()
    # Temporary files are never taken for images either (hidden names).
    from aedetect.data.sources import find_images

    assert find_images(out) == [out / "g.png"]


def test_skipped_entries_are_warned_about_and_counted(tmp_path: Path, model_file: Path, digits_uint8) -> None:  # type: ignore[no-untyped-def]
    images, _ = digits_uint8
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(images[i]).save(root / f"d{i}.png")
    Image.fromarray(images[3]).save(root / "anim.gif")
    (root / "gone.png").symlink_to(root / "nowhere.png")  # broken symlink
    (root / "sub" / "back").symlink_to(root)  # a loop: sub/back -> in
    locked = root / "locked"
    locked.mkdir()
    Image.fromarray(images[4]).save(locked / "x.png")
    locked.chmod(0)
    try:
        p = _cli("score", str(model_file), str(root), "--out", str(tmp_path / "out"), as_user=True)
    finally:
        locked.chmod(0o755)
    assert p.returncode == 0, p.stderr[-3000:]
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]
    for what in ("anim.gif: unsupported image format (.gif)", "gone.png: broken symlink",
                 "symlink loop", "locked: folder cannot be read"):
        assert any(what in w for w in warnings), (what, warnings)
    assert any("4 entries skipped" in w for w in warnings), warnings
    rows = (tmp_path / "out" / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # the three readable images, each once (the loop is not re-read)


def test_outputs_get_the_umask_mode(tmp_path: Path, model_file: Path, digits_uint8) -> None:  # type: ignore[no-untyped-def]
    images, _ = digits_uint8
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        Image.fromarray(images[i]).save(src / f"d{i}.png")
    old = os.umask(0o002)
    try:
        r = runner.invoke(app, ["score", str(model_file), str(src), "--out", str(tmp_path / "out"), "--all-heatmaps"])
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) >= 4 + 2  # heat maps, scores.csv, report.html, histogram.png
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o664}, modes


def test_log_lines_do_not_wrap_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    long = "a_file_whose_name_is_long_enough_to_pass_eighty_columns_by_itself_" * 2 + ".png"
    (src / long).write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    Image.fromarray(np.full((24, 24), 90, np.uint8)).save(src / "g.png")
    model = untrained_model(tmp_path / "m.safetensors")
    p = _cli("denoise", str(model), str(src), "--out", str(out))
    assert p.returncode == 2, p.stderr  # one failed, one done
    lines = p.stderr.splitlines()
    assert any(ln.startswith("warning: failed") and ln.rstrip().endswith(")") and long in ln for ln in lines), lines
    assert any(ln.strip().startswith(f"failed {long}:") and "cannot" in ln for ln in lines), lines
