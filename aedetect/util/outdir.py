"""Where a command may write: checked before any work, so a bad ``--out`` costs nothing."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aedetect.errors import AedetectError, OutputPathError
from aedetect.util.fsutil import holds_results, pid_alive
from aedetect.util.names import parse_temp_name


def input_holding(path: str | Path, inputs: Iterable[str | Path]) -> Path | None:
    """The input (a file, or a folder tree) that ``path`` is or lies inside, links resolved;
    None if it touches none. Inputs that do not exist (a dataset by name) hold nothing."""
    p = Path(path).resolve()
    for src in inputs:
        s = Path(src)
        if not s.exists():
            continue
        r = s.resolve()
        if p == r or (s.is_dir() and r in p.parents):
            return s
    return None


def check_may_write(path: str | Path, inputs: Iterable[str | Path], option: str = "--out") -> None:
    """The one rule for every output path: never an input file and never inside an input
    folder, whatever the path's spelling (``..``, a symlink, an ``--out`` that is a parent of
    the input). Outputs there would replace the user's data or be taken for inputs by the
    next run; refused in one line before any work."""
    src = input_holding(path, inputs)
    if src is not None:
        raise OutputPathError(f"{option} {path}: inside the input {src} (must not be the input or inside it); "
                              "nothing is written there (outputs would replace inputs or be taken for them on "
                              "the next run)")


def check_not_inside(out: str | Path, inputs: str | Path, option: str = "--out") -> None:
    """Refuse ``out`` equal to the input folder or below it (see :func:`check_may_write`)."""
    if Path(inputs).is_dir():
        check_may_write(out, [inputs], option)


def check_out_folder(out: str | Path | None, option: str = "--out") -> None:
    """``out`` must be a new or empty folder, and creatable: an existing file, a folder with
    results in it, or a parent that is a file or not writable is one line naming the path."""
    if out is None:
        return
    p = Path(out)
    if p.is_file() or (p.exists() and not p.is_dir()):
        raise OutputPathError(f"{option} {p}: is a file, not a folder; choose a folder to create")
    if p.is_dir() and holds_results(p):
        raise OutputPathError(f"{option} {p}: folder exists and is not empty; choose a new {option}")
    parent = next((a for a in [p, *p.parents] if a.exists()), Path("."))
    if not parent.is_dir():
        raise OutputPathError(f"{option} {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {p}: {parent} is not writable (permission denied)")


@contextmanager
def writes_to(path: str | Path) -> Iterator[None]:
    """An OSError in the block that names no file (``write()`` on a full disk raises ENOSPC
    without one), or only the temporary sibling of an atomic write, is re-raised naming
    ``path``, the output being written, so the CLI's one error line says where:
    ``runs/s: No space left on device``."""
    try:
        yield
    except OSError as e:
        if e.errno is None or isinstance(e, AedetectError):  # an OutputError names its path already
            raise
        named = e.filename
        if named is not None:  # the temporary sibling of an atomic write says nothing to a user
            f = Path(str(named))
            if parse_temp_name(f.name) is None or f.parent != Path(path).parent:
                raise
        raise type(e)(e.errno, e.strerror, str(path)) from e
    except Exception as e:  # safetensors' writer reports I/O errors as its own SafetensorError
        text = str(e)
        if type(e).__name__ != "SafetensorError" or "I/O error" not in text:
            raise
        why = text.split("I/O error:", 1)[1].split("(os error")[0].strip()
        raise OutputPathError(f"{path}: {why}") from None


def remove_orphans(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Delete the temporary files that aedetect writers killed mid-write left in ``folder``:
    names that :func:`aedetect.util.names.temp_name` made (its tag checked, so a user's
    ``.notes.4242.zz9yy8xx.tmp.txt`` never matches) whose process is gone. Another process's
    write in progress is left alone. Returns what was removed (each logged)."""
    import logging

    root = Path(folder)
    if not root.is_dir():
        return []
    removed = []
    for p in (root.rglob(".*.tmp*") if recursive else root.glob(".*.tmp*")):
        pid = parse_temp_name(p.name)
        if pid is None or p.is_symlink() or not p.is_file():
            continue
        try:
            if not pid_alive(pid):
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    if removed:
        logging.getLogger("aedetect").warning("%s: removed %d temporary file(s) left by an interrupted run",
                                              root, len(removed))
    return removed
