"""The checks of ``aedetect score``'s options, without PyTorch: a run that is refused is
refused before the model is read or any image decoded (and, from the CLI, before torch is
imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aedetect.core.checks import check_model_path, check_whole_number
from aedetect.util.outdir import check_not_inside, check_out_folder


def check_score_options(model: str | Path, data: Any, out: str | Path | None, batch_size: int,
                        max_images: int | None) -> None:
    """Batch size, image limit, model path and output folder (new or empty, creatable, not
    inside DATA), all before anything is loaded."""
    check_whole_number("--batch-size", batch_size, 1)
    if max_images is not None:
        check_whole_number("--max-images", max_images, 1)
    check_model_path(model)
    check_out_folder(out)
    if out is not None and isinstance(data, (str, Path)):
        check_not_inside(out, data)
