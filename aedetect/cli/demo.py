"""``aedetect demo``: train (and score, and denoise) on bundled data, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.util.progress import console, plain


@app.command()
@handle_errors
def demo(
    out: Annotated[Optional[Path], typer.Option(help="Folder to create for the demo outputs (default: a new runs/demo-*).")] = None,
    fast: Annotated[bool, typer.Option(help="A few epochs only (smoke test).")] = False,
) -> None:
    """Run the whole toolkit on a texture bundled with scikit-image; no data or network needed."""
    from aedetect.demo import run_demo

    res = run_demo(out, fast=fast)
    for line in res.lines:
        console.print(plain(line), highlight=False)
    typer.echo(str(res.out))
