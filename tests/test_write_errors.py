"""A full disk or a folder the user may not write to: score, fit and calibrate end with one line
naming the path and exit code 1, never a traceback.

The disk is really full: a 64 KiB tmpfs where the test runs as root (CI does), else a file-size
limit (RLIMIT_FSIZE) on the command's process, which the kernel enforces the same way. The
permission error is real too: a folder of mode 0555, and when the test runs as root (who may
write anywhere) the command runs without CAP_DAC_OVERRIDE (``setpriv``), so the mode holds for
it as for any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Run the CLI in a fresh process; with argv[1] == "fsize", writes past 20 KB fail (EFBIG).
RUN = (
    "import resource, signal, sys\n"
    "if sys.argv[1] == 'fsize':\n"
    "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
    "del sys.argv[1]\n"
    "from aedetect.cli import main\n"
    "main()\n"
)


@pytest.fixture()
def full_disk() -> Iterator[tuple[Path, str]]:
    """(a folder on a full-to-be disk, the RUN mode)."""
    where = Path(tempfile.mkdtemp(prefix="aedetect-full-"))
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True).returncode == 0
    try:
        yield where, ("plain" if mounted else "fsize")
    finally:
        if mounted:
            subprocess.run(["umount", str(where)], check=False)
        shutil.rmtree(where, ignore_errors=True)


def _cli(mode: str, *argv: str, as_user: bool = False) -> subprocess.CompletedProcess[str]:
    """``aedetect ARGV`` in a fresh process; ``as_user``: without root's power to ignore modes."""
    cmd = [sys.executable, "-c", RUN, mode, *argv]
    if as_user and os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _one_error_line(p: subprocess.CompletedProcess[str], path: Path) -> None:
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and len(err) == 1, p.stderr[-3000:]
    assert str(path) in err[0] and ("No space left" in err[0] or "File too large" in err[0]
                                    or "Permission denied" in err[0] or "not writable" in err[0]), err[0]


@pytest.fixture()
def shared(tmp_path: Path, model_file: Path, digits_uint8) -> Path:  # type: ignore[no-untyped-def]
    """The model and 40 digit images."""
    root = tmp_path / "shared"
    (root / "in").mkdir(parents=True)
    shutil.copy(model_file, root / "model.safetensors")
    images, _ = digits_uint8
    for i in range(40):
        Image.fromarray(images[i]).resize((16, 16), Image.NEAREST).save(root / "in" / f"d{i:03d}.png")
    return root


def test_score_fit_calibrate_on_a_full_disk(full_disk: tuple[Path, str], shared: Path) -> None:
    where, mode = full_disk
    (where / "ballast").write_bytes(np.random.default_rng(0).bytes(40_000) if mode == "plain" else b"")
    out = where / "s"
    p = _cli(mode, "score", str(shared / "model.safetensors"), str(shared / "in"), "--out", str(out), "--all-heatmaps")
    _one_error_line(p, out)
    run = where / "run"
    p = _cli(mode, "fit", str(shared / "in"), "--out", str(run), "--epochs", "2", "--size", "16",
             "--set", "model.widths=[64,128]")
    _one_error_line(p, run)
    new = where / "new.safetensors"
    mvtec = shared / "in"
    p = _cli(mode, "calibrate", str(shared / "model.safetensors"), str(mvtec), "--normal-dir", str(mvtec),
             "--rule", "fpr", "--target-fpr", "0.1", "--out", str(new))
    _one_error_line(p, new)
    assert not new.exists()  # no half-written model file under its name


def test_score_fit_calibrate_without_write_permission(shared: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    try:
        locked.chmod(0o555)
        for argv, path in (
            (["score", str(shared / "model.safetensors"), str(shared / "in"), "--out", str(locked / "s")], locked / "s"),
            (["fit", str(shared / "in"), "--out", str(locked / "run"), "--epochs", "1", "--size", "16"], locked / "run"),
            (["calibrate", str(shared / "model.safetensors"), str(shared / "in"), "--normal-dir", str(shared / "in"),
              "--rule", "fpr", "--target-fpr", "0.1", "--out", str(locked / "n.safetensors")], locked / "n.safetensors"),
        ):
            p = _cli("plain", *argv, as_user=True)
            _one_error_line(p, path)
            assert not path.exists()
    finally:
        locked.chmod(0o755)
