"""The checks of ``aedetect score``'s and ``aedetect calibrate``'s options, without PyTorch:
a run that is refused is refused before the model is read or any image decoded (and, from
the CLI, before torch is imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aedetect.core.checks import check_model_path, check_whole_number
from aedetect.core.pretrained import ModelPath
from aedetect.errors import AedetectError, ConfigError
from aedetect.util.outdir import check_may_write, check_out_folder


def check_score_options(model: str | Path, data: Any, out: str | Path | None, batch_size: int,
                        max_images: int | None, inputs: tuple[str | Path | None, ...] = ()) -> ModelPath:
    """Batch size, image limit, model path and output folder (new or empty, creatable, not
    inside DATA nor inside any other input folder: ``inputs``, e.g. --normal-dir, whose next
    scan would take the heat maps for images), all before anything is loaded. Returns the
    model path looked up (aedetect.core.checks.check_model_path), to pass on."""
    check_whole_number("--batch-size", batch_size, 1)
    if max_images is not None:
        check_whole_number("--max-images", max_images, 1)
    found = check_model_path(model)
    check_out_folder(out)
    if out is not None:
        folders = [data] if isinstance(data, (str, Path)) else []
        check_may_write(out, [*folders, *(i for i in inputs if i is not None)])
    return found


CALIBRATION_RULES = ("f1", "fpr")


def check_target_fpr(target_fpr: object) -> None:
    """A real number in (0, 0.5] (a string or a bool is refused, not compared)."""
    if isinstance(target_fpr, bool) or not isinstance(target_fpr, (int, float)) or not 0 < target_fpr <= 0.5:
        raise ConfigError(f"--target-fpr: must be a number in (0, 0.5], got {target_fpr!r}")


def check_calibrate_options(model: str | Path, out: str | Path, rule: object, target_fpr: object,
                            batch_size: object) -> ModelPath:
    """Rule, target FPR, batch size, model path and a new output file, before anything is
    loaded. Returns the model path looked up, to pass on."""
    if rule not in CALIBRATION_RULES:
        raise ConfigError(f"--rule: {rule!r} is not one of {', '.join(CALIBRATION_RULES)}")
    check_target_fpr(target_fpr)
    check_whole_number("--batch-size", batch_size, 1)
    found = check_model_path(model)
    check_new_file(out)
    parent = next((a for a in Path(out).parents if a.exists()), Path("."))
    if not parent.is_dir():
        raise AedetectError(f"--out {out}: {parent} is a file, not a folder")
    return found


def check_new_file(out: str | Path) -> None:
    """Raise if ``out`` exists: a model file (anyone's) is never written over."""
    if Path(out).exists():
        raise AedetectError(f"{out}: already exists; choose a new --out (calibrate never overwrites a file)")
