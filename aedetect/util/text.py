"""File names as text that every writer can hold.

On POSIX a file name is bytes; Python decodes one that is not valid UTF-8 (a Latin-1
``caf\\xe9.png``) with surrogate escapes (``'caf\\udce9.png'``), which opens the file again but
cannot be encoded as UTF-8: writing it to a CSV, a JSON file, an HTML page or a terminal
raises ``UnicodeEncodeError`` and lost whole runs. :func:`printable` shows each undecodable
byte as ``\\xNN`` instead, so the name stays recognisable and every output stays valid UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: object) -> str:
    """:func:`printable`, and every control character (a newline, a carriage return, the escape
    that starts a terminal colour or cursor sequence) as ``\\xNN``: a file name can then
    neither start a second, made-up log line nor rewrite the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                        printable(text))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def strict_json(value: Any, **kwargs: Any) -> str:
    """JSON that every parser reads: Python writes NaN and Infinity, which JSON has not (jq, a
    browser's JSON.parse and Go refuse the file); a value that is not finite (an undefined
    metric) is written as null."""
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def printable(text: object) -> str:
    """``str(text)`` with surrogate-escaped bytes as ``\\xNN`` (and any other lone surrogate as
    ``\\udNNN``): always encodable as UTF-8; unchanged for a valid name."""
    s = str(text)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        pass
    try:
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return s.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")
