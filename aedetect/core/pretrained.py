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
# ``pretrained`` alone (denoising only): the gray and the colour model together, each image
# going to the one for its mode, so a mixed folder needs one command.
BY_MODE = "pretrained"
BY_MODE_NAMES = ("gray", "rgb")


def shipped() -> list[str]:
    """The names of the shipped models (``gray`` for ``pretrained:gray``)."""
    return sorted(p.stem for p in FOLDER.glob("*.safetensors"))


def resolve_model_path(path: str | Path) -> Path:
    """``pretrained:NAME`` -> the shipped file; any other path as it is. ``pretrained`` alone
    names a pair (``BY_MODE``): only the denoiser loads it, by its two names."""
    text = str(path)
    if text == BY_MODE:
        raise ModelFileError(f"{text}: names the shipped gray and colour denoisers together, for `aedetect denoise`; "
                             f"elsewhere give one of them: {', '.join(PREFIX + n for n in BY_MODE_NAMES)}")
    if not text.startswith(PREFIX):
        return Path(path)
    name = text[len(PREFIX):]
    f = FOLDER / f"{name}.safetensors"
    if not name or "/" in name or "\\" in name or not f.is_file():
        have = ", ".join(PREFIX + n for n in shipped()) or "none"
        raise ModelFileError(f"{text}: no such shipped model (this aedetect has: {have})")
    return f
