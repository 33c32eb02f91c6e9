"""The one CSV writer of aedetect: cells a spreadsheet would run as a formula are neutralised.

File names and folder names reach scores.csv, denoise_metrics.csv and the ``kind`` column as
they are; a file called ``=HYPERLINK("http:x","click").png`` or an MVTec defect folder called
``=cmd|' -c calc'!A0`` became a live formula when the CSV was opened in Excel or LibreOffice.
OWASP's rule: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return gets a leading ``'``, which spreadsheets show as text and never evaluate. Numbers stay
numbers (``-0.5``, ``-1.2e-05``): a cell that is exactly a decimal number is left alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet evaluates: numbers (and number text) as
    they are, other text starting with a formula character behind a ``'``."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


class SafeWriter:
    """``csv.writer`` whose every cell goes through :func:`safe_cell`."""

    def __init__(self, fh: IO[str], **kwargs: Any) -> None:
        self._w = csv.writer(fh, **kwargs)

    def writerow(self, row: Sequence[Any]) -> None:
        self._w.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """``csv.DictWriter`` whose every cell goes through :func:`safe_cell` (the header too)."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)

    def writeheader(self) -> Any:
        return super().writerow({k: safe_cell(k) for k in self.fieldnames})
