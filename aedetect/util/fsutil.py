"""Safe file output: atomic writes and fresh run folders, so nothing a user owns is lost."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """Yield a temporary name beside ``path``; rename it into place only if the block succeeds.

    A crash mid-write never leaves a half-written file under the final name, and readers
    never see one.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid in the name: util.outdir.remove_orphans() removes the temporary files of
    # a process killed mid-write (kill -9, power loss), never those of one still writing.
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.{os.getpid()}.", suffix=f".tmp{p.suffix}", dir=p.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 -> what open() would give
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status), else by the
    set-and-restore of os.umask."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def check_new_dir(out: str | Path | None) -> None:
    """Raise if ``out`` exists and holds anything: results are never written over."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        from aedetect.util.outdir import check_out_folder

        check_out_folder(out)  # "is a file, not a folder", not "folder is not empty"
    if out is not None and Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        from aedetect.errors import AedetectError

        raise AedetectError(f"{out}: folder exists and is not empty; choose a new --out "
                            "(or --resume it to continue that run)")


def new_run_dir(out: str | Path | None, base: str | Path = "runs", prefix: str = "fit") -> Path:
    """``out`` if given (it must not already hold a model), else a new ``runs/<prefix>-<time>``.

    Never reuses a folder that has results in it: a second run gets a numbered sibling.
    """
    if out is not None:
        check_new_dir(out)
        p = Path(out)
        p.mkdir(parents=True, exist_ok=True)
        return p
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(base)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        p = root / (f"{prefix}-{stamp}" + (f"-{i}" if i else ""))
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")
