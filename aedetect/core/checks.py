"""Option checks shared by the commands, without PyTorch, so a bad value is refused at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aedetect.errors import ConfigError, ModelFileError

if TYPE_CHECKING:
    from aedetect.core.pretrained import ModelPath


def check_whole_number(option: str, value: object, low: int) -> None:
    """``value`` must be an int (not a bool, not a float) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{option}: must be a whole number of at least {low}, got {value!r}")


def check_model_path(model: str | Path) -> ModelPath:
    """The model file exists and is a file (its contents are checked on loading); a shipped
    ``pretrained:NAME`` must be one this aedetect has (``pretrained`` alone: both of the pair).
    Returns the path with the file it names (aedetect.core.pretrained.ModelPath), for the
    command to pass on: the name is looked up here, once."""
    from aedetect.core.pretrained import PREFIX, locate

    found = locate(model, pair=True)
    if not str(model).startswith(PREFIX) and not found.members and not found.file.is_file():
        raise ModelFileError(f"{model}: no such model file")
    return found


def check_device(name: str, option: str = "--device") -> None:
    """An explicit device must exist here: ``cuda`` without CUDA (or ``mps`` without Metal) is
    refused before any image is decoded, not after (this one imports torch, as any run does)."""
    import torch

    kind = name.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option}: 'cuda' requested but no CUDA device is available (use --device cpu or auto)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError(f"{option}: 'mps' requested but no Apple Metal device is available (use --device cpu or auto)")


def check_resume_data(run: str | Path, data: str) -> None:
    """``fit --resume RUN`` on DATA other than the run trained on is refused: a finished run
    (its summary.json names its data) would go on training on other images and write over its
    model. Folders are compared resolved; a recorded folder that no longer exists here, or an
    interrupted run (nothing recorded yet), is not judged."""
    import json

    summary = Path(run) / "summary.json"
    try:
        recorded = json.loads(summary.read_text(encoding="utf-8")).get("data")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(recorded, str) or recorded == data:
        return
    was, now = Path(recorded), Path(data)
    if was.exists() and now.exists() and was.resolve() == now.resolve():
        return  # one folder, spelled two ways
    if was.exists() or not now.exists():  # a recorded folder here, or two dataset names, that differ
        raise ConfigError(f"--resume {run}: the run trained on {recorded}, not {data}; resume it on the same "
                          "DATA or start a new --out")
