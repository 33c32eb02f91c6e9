"""Typer options that several commands share, written once so their names, help and defaults
stay the same everywhere (``score`` and ``calibrate`` read labelled data the same way)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

NormalDir = Annotated[Optional[str], typer.Option(
    help="Folder of normal images (labels 0), relative to DATA or absolute.")]
AbnormalDir = Annotated[Optional[str], typer.Option(
    help="Folder of anomalous images (labels 1), relative to DATA or absolute.")]
MaskDir = Annotated[Optional[str], typer.Option(
    help="Folder of masks for the anomalous images (same stem, optional _mask suffix).")]
TestNormalClass = Annotated[Optional[int], typer.Option(
    help="For datasets by name: class K is normal, the others anomalous (test split).")]
DataRoot = Annotated[Optional[str], typer.Option(
    help="Where datasets by name live (default $AEDETECT_DATA_ROOT).")]
BatchSize = Annotated[int, typer.Option(help="Images per forward pass.")]
InferenceDevice = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda or mps.")]
ShardOption = Annotated[Optional[str], typer.Option(
    help="Process only share K of N (K/N, 0-based, e.g. 0/4) of the files, for N jobs on N machines; "
         "default: torchrun's RANK/WORLD_SIZE or a SLURM array's task id, else all; 'none' = all.")]
