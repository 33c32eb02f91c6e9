"""Model files shipped inside the package: ``pretrained:NAME`` wherever a model path goes.

They are model files like any other (safetensors weights plus the JSON record; no pickle), in
``aedetect/pretrained/``, so they work right after ``pip install`` with no network. How each one
was trained, and the command that reproduces it, is in its record (``aedetect info
pretrained:gray``) and in recipes/.
"""

from __future__ import annotations

from pathlib import Path

from aedetect.errors import ModelFileError

PREFIX = "pretrained:"
FOLDER = Path(__file__).resolve().parent.parent / "pretrained"


def shipped() -> list[str]:
    """The names of the shipped models (``gray`` for ``pretrained:gray``)."""
    return sorted(p.stem for p in FOLDER.glob("*.safetensors"))


def resolve_model_path(path: str | Path) -> Path:
    """``pretrained:NAME`` -> the shipped file; any other path as it is."""
    text = str(path)
    if not text.startswith(PREFIX):
        return Path(path)
    name = text[len(PREFIX):]
    f = FOLDER / f"{name}.safetensors"
    if not name or "/" in name or "\\" in name or not f.is_file():
        have = ", ".join(PREFIX + n for n in shipped()) or "none"
        raise ModelFileError(f"{text}: no such shipped model (this aedetect has: {have})")
    return f
