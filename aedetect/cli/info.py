"""``aedetect info MODEL_FILE_OR_PRESET``: config, parameter counts and metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.info import describe


@app.command()
@handle_errors
def info(
    target: Annotated[str, typer.Argument(help="A model file (.safetensors) or a preset name.")],
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show a model file's or preset's architecture, parameter counts and metadata."""
    d = describe(target)
    if json_:
        typer.echo(json.dumps(d, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    out = Console()
    t = Table(title=f"{d['source']}: {Path(target).name if d['kind'] == 'model' else target}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    for k in ("kind", "task", "parameters", "encoder_parameters", "decoder_parameters"):
        t.add_row(k, f"{d[k]:,}" if isinstance(d[k], int) else str(d[k]))
    for section in ("model", "data", "train"):
        for k, v in d["config"][section].items():
            t.add_row(f"{section}.{k}", json.dumps(v))
    for section in ("training", "calibration", "noise"):
        for k, v in (d.get(section) or {}).items():
            text = json.dumps(v)
            # A latent-score code bank is kilobytes of base64: --json has it, the table not.
            t.add_row(f"{section}.{k}", text if len(text) <= 160 else f"<{len(text):,} characters; see --json>")
    out.print(t)
