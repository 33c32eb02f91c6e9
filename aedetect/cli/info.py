"""``aedetect info MODEL_FILE_OR_PRESET``: config, parameter counts and metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aedetect.cli.app import app, handle_errors
from aedetect.util.progress import plain
from aedetect.util.text import strict_json


def summarise_banks(calibration: dict | None) -> dict | None:  # type: ignore[type-arg]
    """The calibration record with the base64 payload of each bank (latent or feature vectors)
    and of the ``learned`` map's network left out, their shapes and sizes kept: a latent-feature
    bank is about 17 MB of text, which nobody reads in a terminal or wants in a pipe to ``jq``."""
    if not calibration:
        return calibration

    def brief(v: Any) -> Any:
        if not isinstance(v, dict) or not any(k.endswith("_base64") for k in v):
            return v
        return {**{k: x for k, x in v.items() if not k.endswith("_base64")}, "omitted": "use --banks"}

    return {k: brief(v) for k, v in calibration.items()}


@app.command()
@handle_errors
def info(
    target: Annotated[str, typer.Argument(help="A model file (.safetensors) or a preset name.")],
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    banks: Annotated[bool, typer.Option(
        "--banks", help="With --json: include the calibration's banks (megabytes of base64) instead of "
                        "their shapes.")] = False,
) -> None:
    """Show a model file's or preset's architecture, parameter counts and metadata."""
    from aedetect.core.modelfile.info import describe  # lazy: a model file is described without torch

    d = describe(target)
    if json_:
        if not banks:
            d["calibration"] = summarise_banks(d.get("calibration"))
        typer.echo(strict_json(d, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    out = Console()
    t = Table(title=plain(f"{d['source']}: {Path(target).name if d['kind'] == 'model' else target}"), show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    for k in ("kind", "task", "parameters", "encoder_parameters", "decoder_parameters"):
        t.add_row(k, f"{d[k]:,}" if isinstance(d[k], int) else plain(d[k]))
    for section in ("model", "data", "train"):
        for k, v in d["config"][section].items():
            t.add_row(plain(f"{section}.{k}"), plain(json.dumps(v)))
    for section in ("training", "calibration", "noise"):
        for k, v in (d.get(section) or {}).items():
            text = json.dumps(v)
            # A bank is up to megabytes of base64: `--json --banks` has it, the table not.
            shown = plain(text) if len(text) <= 160 else f"<{len(text):,} characters; see --json>"
            t.add_row(plain(f"{section}.{k}"), shown)
    out.print(t)
    if d["config"]["model"]["arch"] == "none":
        out.print("no autoencoder: this model scores with ImageNet features alone (anomaly.autoencoder, "
                  "docs/anomaly.md)", highlight=False)
    from aedetect.anomaly.calibration.reliability import reliability_line
    from aedetect.anomaly.selection.selectreport import selection_line

    from aedetect.data.settings import tiling_line

    for line in (tiling_line(d["config"]["data"]), reliability_line(d.get("calibration") or {}),
                 selection_line(d.get("calibration") or {})):
        if line:
            out.print(plain(line), highlight=False)
