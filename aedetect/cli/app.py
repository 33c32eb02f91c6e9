"""The typer app, logging to the terminal, the one-red-line error policy and the exit codes.

Nothing here imports PyTorch: ``aedetect --help``, a command's ``--help`` and a usage error
answer in a fraction of a second (each command imports its library code inside the call).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
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

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 error (unreadable data or model file, a failed write; one line "
    "names the path); 2 score --fail-on-anomaly flagged an image, or denoise failed on some "
    "files; 64 usage error (unknown option, missing argument, invalid value); 130 interrupted."
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


def handle_errors(fn: F) -> F:
    """Turn the errors a user can fix into one red line: a bad option value is a usage error
    (exit 64); bad data, a bad model file or a failed write (disk full, permission denied)
    exit 1; never a traceback for them."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setup_logging()
        try:
            return fn(*args, **kwargs)
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
