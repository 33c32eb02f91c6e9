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


class ModelPath(str):
    """A model path as given (the text, which every message and record shows) together with
    the file it names, looked up once where the command checks it (:func:`locate`). A command
    passes it on in place of the text, so the read does not look the name up again.
    ``members``: for :data:`BY_MODE`, the pair's two models, each looked up (``file`` is then
    their folder)."""

    file: Path
    members: tuple["ModelPath", ...]

    def __new__(cls, text: str, file: Path, members: tuple["ModelPath", ...] = ()) -> "ModelPath":
        self = super().__new__(cls, text)
        self.file, self.members = file, members
        return self


def shipped_file(name: str) -> Path:
    """The file of the shipped model ``pretrained:NAME``: the one place a name is looked up."""
    f = FOLDER / f"{name}.safetensors"
    if not name or "/" in name or "\\" in name or not f.is_file():
        have = ", ".join(PREFIX + n for n in shipped()) or "none"
        raise ModelFileError(f"{PREFIX}{name}: no such shipped model (this aedetect has: {have})")
    return f


def locate(path: str | Path, pair: bool = False) -> ModelPath:
    """``path`` with the file it names: ``pretrained:NAME`` -> the shipped file, any other path
    as it is; a :class:`ModelPath` is returned as it is (looked up already). ``pair``: accept
    ``pretrained`` alone (:data:`BY_MODE`, the denoisers' pair), which elsewhere is refused."""
    text = str(path)
    if isinstance(path, ModelPath) and (pair or not path.members):
        return path
    if text == BY_MODE:
        if not pair:
            raise ModelFileError(f"{text}: names the shipped gray and colour denoisers together, for `aedetect "
                                 f"denoise`; elsewhere give one of them: {', '.join(PREFIX + n for n in BY_MODE_NAMES)}")
        return ModelPath(text, FOLDER, tuple(locate(PREFIX + n) for n in BY_MODE_NAMES))
    if not text.startswith(PREFIX):
        return ModelPath(text, Path(path))
    return ModelPath(text, shipped_file(text[len(PREFIX):]))


def resolve_model_path(path: str | Path) -> Path:
    """``pretrained:NAME`` -> the shipped file; any other path as it is (:func:`locate`'s file).
    ``pretrained`` alone names a pair (``BY_MODE``): only the denoiser loads it, by its two names."""
    return locate(path).file
