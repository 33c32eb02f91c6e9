"""Safe file output: atomic writes and fresh run folders, so nothing a user owns is lost."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aedetect.errors import AedetectError, OutputError, OutputExistsError, OutputPathError
from aedetect.util.names import parse_temp_name, temp_name


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary name beside ``path``; put it in place only if the block succeeds and
    the file is complete.

    Complete means: the block returned, the temporary file is not empty, and its data reached
    the disk (``fsync``; a full disk that the writer did not notice fails here, not later).
    Only then is it renamed, so a crash, a failing writer or a full disk never leaves a file
    under the final name, and a re-run (which skips existing outputs) writes it again. Any
    ``OSError`` on the way is one :class:`OutputError` naming ``path``.

    ``overwrite=False``: an existing ``path`` is refused (:class:`OutputExistsError`) before
    and, race-free, at the final step (a hard link, which fails if the name exists).
    """
    p = Path(path)
    if not overwrite and os.path.lexists(p):
        raise OutputExistsError(f"{p}: already exists; not written over (use --overwrite to replace it)")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(p)
    except OSError as e:
        raise _output_error(f"{p}: cannot write ({e.strerror or e})", e) from None
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 -> what open() would give
        _sync_complete(tmp)
        _place(tmp, p, overwrite)
        _sync_dir(p.parent)
    except (OutputError, OutputExistsError):
        raise
    except OSError as e:
        raise _output_error(f"{p}: cannot write ({e.strerror or e}); nothing was written under this name", e) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _output_error(message: str, cause: OSError) -> OutputError:
    """One line for the user, and the cause's errno kept, so a caller can tell a full or
    read-only disk (stop the run) from one file that failed (go on)."""
    err = OutputError(message)
    err.errno = cause.errno
    return err


def _new_temp(p: Path) -> str:
    """Create the temporary sibling of ``p`` exclusively (mode 0600, as mkstemp), named by
    :func:`aedetect.util.names.temp_name`: bounded at 255 bytes whatever ``p``'s name, and
    marked with the writer's pid and a tag only aedetect computes, so
    util.outdir.remove_orphans() removes the files of a process killed mid-write (kill -9,
    power loss) and never a user's file or a live writer's."""
    for _ in range(100):
        tmp = str(p.parent / temp_name(p.name, os.getpid()))
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return tmp
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name", str(p.parent))


def _sync_complete(tmp: str) -> None:
    """Flush the written file to the disk and refuse an empty one (a writer that failed silently)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size == 0:
        raise OSError(errno.EIO, "the writer produced an empty file")


def _place(tmp: str, p: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, p)
        return
    try:
        os.link(tmp, p)  # fails if p exists: no window in which another file is replaced
    except FileExistsError:
        raise OutputExistsError(f"{p}: already exists; not written over (use --overwrite to replace it)") from None
    except OSError:  # a file system without hard links: the check above is the guard
        if os.path.lexists(p):
            raise OutputExistsError(f"{p}: already exists; not written over (use --overwrite to replace it)") from None
        os.replace(tmp, p)


def _sync_dir(folder: Path) -> None:
    """Make the rename durable; best effort (not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def write_text_atomic(path: str | Path, text: str, *, overwrite: bool = True) -> None:
    """UTF-8 text, atomically; a character UTF-8 cannot hold (a surrogate from an undecodable
    file name) is written as a backslash escape rather than failing the whole write."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8", errors="backslashreplace")


def is_within(path: str | Path, root: str | Path) -> bool:
    """True if ``path`` is ``root`` or below it, links resolved (so a symlinked output folder
    that points into the input tree counts as inside it)."""
    p, r = Path(path).resolve(), Path(root).resolve()
    return p == r or r in p.parents


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (someone else's counts: it may be writing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _claim_is_stale(claim: Path) -> bool:
    """A claim file whose process is gone (a run that crashed or was killed); a claim that
    cannot be read or names no pid is kept (not ours to judge)."""
    try:
        words = claim.read_text(encoding="utf-8", errors="replace").split()
        return len(words) >= 2 and words[0] == "pid" and words[1].isdigit() and not pid_alive(int(words[1]))
    except OSError:
        return False


def leftover(entry: Path) -> bool:
    """What a crashed aedetect run leaves and a new run may take over: its stale claim, and the
    temporary files of writers that are gone. Nothing of a user's is ever a leftover."""
    if entry.name == CLAIM_FILE:
        return entry.is_file() and _claim_is_stale(entry)
    pid = parse_temp_name(entry.name)
    return pid is not None and entry.is_file() and not entry.is_symlink() and not pid_alive(pid)


def holds_results(folder: Path) -> bool:
    """True if ``folder`` holds anything but a crashed run's leftovers (see :func:`leftover`)."""
    return any(not leftover(q) for q in folder.iterdir())


def check_new_dir(out: str | Path | None) -> None:
    """Raise if ``out`` exists and holds anything (a crashed run's claim and temporary files
    aside): results are never written over."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():  # "is a file", not "is not empty"
        raise OutputPathError(f"--out {Path(out)}: is a file, not a folder; choose a folder to create")
    if out is not None and Path(out).exists() and (not Path(out).is_dir() or holds_results(Path(out))):
        raise AedetectError(f"{out}: folder exists and is not empty; choose a new --out "
                            "(or --resume it to continue that run)")


CLAIM_FILE = ".aedetect-run"


def claim_dir(p: Path) -> Path:
    """Make ``p`` this process's run folder, atomically: a claim file created exclusively
    (``O_EXCL``), so of two runs given the same new folder exactly one goes on. The file stays
    (it names the process and the time); ``--resume`` reuses a claimed folder on purpose. The
    claim of a run that crashed before writing anything (its process gone) is taken over, with
    that run's temporary files: it blocked every re-run."""
    try:
        p.mkdir(parents=True, exist_ok=True)
        if not holds_results(p):
            for q in p.iterdir():
                if leftover(q):  # asked again: another run may have claimed it since
                    q.unlink(missing_ok=True)
        fd = os.open(p / CLAIM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except FileExistsError:
        raise AedetectError(f"{p}: another run has claimed this folder; choose a new --out") from None
    except OSError as e:
        raise OutputError(f"{p}: cannot create the run folder ({e.strerror or e})") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"pid {os.getpid()} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    if any(q.name != CLAIM_FILE and not leftover(q) for q in p.iterdir()):  # filled between our check and the claim
        raise AedetectError(f"{p}: folder exists and is not empty; choose a new --out")
    return p


def new_run_dir(out: str | Path | None, base: str | Path = "runs", prefix: str = "fit") -> Path:
    """``out`` if given (it must be new or empty, and is claimed atomically: see
    :func:`claim_dir`), else a new ``runs/<prefix>-<time>``.

    Never reuses a folder that has results in it: a second run gets a numbered sibling.
    """
    if out is not None:
        check_new_dir(out)
        return claim_dir(Path(out))
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
