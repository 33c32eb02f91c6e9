"""The typer app, logging to the terminal, and the one-red-line error policy."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from aedetect.errors import AedetectError
from aedetect.util.progress import console
from aedetect.util.text import printable

app = typer.Typer(
    name="aedetect",
    help="Convolutional-autoencoder anomaly detection and denoising for image folders.",
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
        console.print(prefix + escape(printable(self.format(record))), soft_wrap=True, highlight=False)


def setup_logging(verbose: bool = False) -> None:
    """Warnings (skipped files) and progress go to stderr; results to stdout."""
    logger = logging.getLogger("aedetect")
    logger.handlers.clear()
    handler = OneLineHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if os.environ.get("RANK", "0") not in ("", "0"):  # torchrun: rank 0 tells the story, the others warn
        logger.setLevel(logging.WARNING)
    logger.propagate = False


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn the errors a user can fix into one red line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        setup_logging()
        try:
            return fn(*args, **kwargs)
        except AedetectError as e:
            fail(str(e))
        except FloatingPointError as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted", code=130)

    return wrapper  # type: ignore[return-value]


def main() -> None:
    app()
