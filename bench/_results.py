"""Writing a bench's results: every bench's ``--json`` and the suite's per-case files go
through one atomic write, so a run cut off mid-write never leaves a half file behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: str | Path, data: Any, indent: int = 1) -> None:
    """``data`` as JSON at ``path``, written to a temporary file first and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent))
    tmp.replace(path)


def print_means(first: str, second: str, means: dict[str, float]) -> None:
    """A two-column markdown table of percentages (``means``: fractions), as the validation
    benches print their summaries."""
    print(f"\n| {first} | {second} |\n|---|---|")
    for name, value in means.items():
        print(f"| {name} | {100 * value:.2f} |")
