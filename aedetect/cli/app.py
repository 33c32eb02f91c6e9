"""The typer app, logging to the terminal, the one-red-line error policy and the exit codes.

Nothing here imports PyTorch: ``aedetect --help``, a command's ``--help`` and a usage error
answer in a fraction of a second (each command imports its library code inside the call).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from aedetect.errors import AedetectError, ConfigError
from aedetect.util.progress import console, plain
from aedetect.util.launch import is_secondary_rank

# Exit codes: one meaning each, so a pipeline can tell a typo from a defect.
EXIT_OK = 0
EXIT_ERROR = 1  # the run could not be done: unreadable data or model file, a write that failed
EXIT_FOUND = 2  # score --fail-on-anomaly: an image was flagged; denoise: some files failed
EXIT_USAGE = 64  # the command line is wrong (unknown option, bad value); sysexits.h's EX_USAGE
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a killed process

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 error (unreadable data or model file, a failed write; one line "
    "names the path); 2 score --fail-on-anomaly flagged an image, or denoise failed on some "
    "files; 64 usage error (unknown option, missing argument, invalid value); 130 interrupted; "
    "143 terminated (SIGTERM)."
)


class AedetectGroup(TyperGroup):
    """Typer's group with usage errors (click's UsageError: unknown option, missing argument,
    a value of the wrong type) given :data:`EXIT_USAGE` instead of click's 2, which
    ``--fail-on-anomaly`` uses for "flagged"."""

    @staticmethod
    def _usage(e: Exception) -> None:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError

        if isinstance(e, UsageError) and not isinstance(e, NoArgsIsHelpError):
            e.exit_code = EXIT_USAGE

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except Exception as e:
            self._usage(e)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as e:
            self._usage(e)
            raise


app = typer.Typer(
    name="aedetect",
    help="Convolutional-autoencoder anomaly detection and denoising for image folders.",
    epilog=EXIT_CODES_HELP,
    cls=AedetectGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

F = TypeVar("F", bound=Callable[..., Any])


class OneLineHandler(logging.Handler):
    """Each record is exactly one terminal line (never wrapped), so a warning about a bad
    file stays greppable in a log of 10,000 files."""

    STYLES = {"WARNING": "yellow", "ERROR": "bold red", "INFO": "dim", "DEBUG": "dim"}

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname
        prefix = "" if level == "INFO" else f"[{self.STYLES.get(level, '')}]{level.lower()}:[/] "
        console.print(prefix + plain(self.format(record)), soft_wrap=True, highlight=False)


def setup_logging(verbose: bool = False) -> None:
    """Warnings (skipped files) and progress go to stderr; results to stdout."""
    logger = logging.getLogger("aedetect")
    logger.handlers.clear()
    handler = OneLineHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if is_secondary_rank():  # torchrun: rank 0 tells the story, the others warn
        logger.setLevel(logging.WARNING)
    logger.propagate = False


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {plain(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def os_error_line(e: OSError) -> str:
    """``PATH: No space left on device``: the path first, as for every other error line."""
    where = e.filename if e.filename is not None else None
    what = e.strerror or str(e)
    if where is None:
        return what
    return f"{where}: {what}" + (f" (-> {e.filename2})" if e.filename2 else "")


class Terminated(BaseException):
    """SIGTERM (a job scheduler's stop, ``kill``, a container shutting down), raised where the
    program is, so that it unwinds as for Ctrl-C: every atomic write's ``finally`` removes its
    temporary file (``.scores.<pid>...tmp.csv`` was left behind) and the run says so in one
    line. A BaseException, so no ``except Exception`` on the way swallows it."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the block (main thread only; elsewhere, and for a
    handler someone else installed, nothing changes); the previous handler is put back."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
            signal.SIG_DFL, None):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def handle_errors(fn: F) -> F:
    """Turn the errors a user can fix into one red line: a bad option value is a usage error
    (exit 64); bad data, a bad model file or a failed write (disk full, permission denied)
    exit 1; never a traceback for them."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setup_logging()
        try:
            with sigterm_unwinds():
                return fn(*args, **kwargs)
        except Terminated:
            fail("terminated (SIGTERM); no partial output was left under a final name", code=EXIT_TERMINATED)
        except ConfigError as e:
            fail(str(e), code=EXIT_USAGE)
        except AedetectError as e:
            fail(str(e))
        except FloatingPointError as e:
            fail(str(e))
        except OSError as e:
            fail(os_error_line(e))
        except KeyboardInterrupt:
            fail("interrupted", code=EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def main() -> None:
    app()
