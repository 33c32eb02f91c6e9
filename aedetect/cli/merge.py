"""``aedetect merge SHARD_RUN... --out DIR``: join ``aedetect score --shard K/N`` runs into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from aedetect.cli.app import app, handle_errors


@app.command()
@handle_errors
def merge(
    shards: Annotated[list[Path], typer.Argument(help="The run folders of all N shards of one `aedetect score --shard K/N` job.")],
    out: Annotated[Optional[Path], typer.Option(help="Folder to create for the joined run (default: a new runs/score-*).")] = None,
    heatmaps: Annotated[bool, typer.Option("--heatmaps/--no-heatmaps", help="Copy the shards' heat maps into the joined run.")] = True,
) -> None:
    """Join sharded score runs: the same scores.csv rows and metrics.json as one process."""
    from aedetect.anomaly.jobs.merge import merge_scores
    from aedetect.cli.score import print_report

    print_report(merge_scores(list(shards), out, copy_heatmaps=heatmaps))
