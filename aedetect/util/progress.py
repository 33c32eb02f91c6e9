"""One rich progress bar style for every long loop (decode, train, score, denoise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from aedetect.util.launch import is_secondary_rank
from aedetect.util.text import one_line

# soft_wrap: a line printed (a warning, "failed PATH: why") is never broken at the terminal's
# width, nor at rich's 80 columns when stderr is a pipe or a log file: one record, one line.
console = Console(stderr=True, soft_wrap=True)


def plain(text: object) -> str:
    """The one door from user text to rich markup: a path, a file name, a defect kind or a value
    read from a model file, shown literally. ``out[/x]`` or ``a[bold]b.png`` would otherwise be
    parsed as markup (a MarkupError traceback after the outputs were written, or a changed
    style); an undecodable byte or a control character shows as ``\\xNN``
    (:func:`~aedetect.util.text.one_line`: a file name cannot add a log line of its own).
    Every console.print, table title and table cell that holds such text goes through here."""
    from rich.markup import escape

    return escape(one_line(text))


class Bar:
    """A handle on one task of a rich Progress; a no-op when the bar is hidden."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._p, self._t = progress, task

    def advance(self, n: float = 1) -> None:
        if self._p is not None and self._t is not None:
            self._p.advance(self._t, n)

    def update(self, **fields: Any) -> None:
        if self._p is not None and self._t is not None:
            self._p.update(self._t, **fields)


@contextmanager
def progress_bar(desc: str, total: int | None, hide_below: int = 0, info: str = "") -> Iterator[Bar]:
    """A bar with count, elapsed, remaining and a free ``info`` text (loss, images/s).

    ``hide_below``: totals smaller than this finish in a blink and get no bar.
    """
    if (total is not None and total < hide_below) or is_secondary_rank():
        yield Bar(None, None)  # a blink of work, or a torchrun rank other than 0 (rank 0 shows it)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
    )
    with progress:
        task = progress.add_task(desc, total=total, info=info)
        yield Bar(progress, task)
