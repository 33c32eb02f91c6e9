"""Where a command may write: checked before any work, so a bad ``--out`` costs nothing."""

from __future__ import annotations

import os
from pathlib import Path

from aedetect.errors import AedetectError


class OutputPathError(AedetectError):
    """An output path that would overwrite, or mix with, something the user owns."""


def check_not_inside(out: str | Path, inputs: str | Path, option: str = "--out") -> None:
    """Refuse ``out`` equal to the input folder or below it: the next run would take the
    outputs (heat maps, denoised copies) for inputs."""
    src = Path(inputs)
    if not src.is_dir():
        return
    out_r, src_r = Path(out).resolve(), src.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise OutputPathError(f"{option} {out}: must not be the input folder or inside it (outputs would be "
                              "taken for inputs on the next run)")


def check_out_folder(out: str | Path | None, option: str = "--out") -> None:
    """``out`` must be a new or empty folder, and creatable: an existing file, a folder with
    results in it, or a parent that is a file or not writable is one line naming the path."""
    if out is None:
        return
    p = Path(out)
    if p.is_file() or (p.exists() and not p.is_dir()):
        raise OutputPathError(f"{option} {p}: is a file, not a folder; choose a folder to create")
    if p.is_dir() and any(p.iterdir()):
        raise OutputPathError(f"{option} {p}: folder exists and is not empty; choose a new {option}")
    parent = next((a for a in [p, *p.parents] if a.exists()), Path("."))
    if not parent.is_dir():
        raise OutputPathError(f"{option} {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {p}: {parent} is not writable (permission denied)")
