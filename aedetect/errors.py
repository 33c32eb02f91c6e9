"""Exceptions the CLI turns into one red line and exit code 1 (never a traceback)."""


class AedetectError(Exception):
    """Base class of the errors a user can cause and fix (bad input, bad config, bad file)."""


class ConfigError(AedetectError, ValueError):
    """An invalid configuration value; the message names the key and the allowed values."""


class DataError(AedetectError, ValueError):
    """No usable images, an unknown dataset, or an image the model cannot take."""


class ModelFileError(AedetectError, ValueError):
    """A model file that is missing, truncated, tampered with, or of an unknown format."""


class TrainingError(AedetectError, RuntimeError):
    """Training that cannot give a useful model (diverged, or collapsed to a constant output)."""


class ExportError(AedetectError, ValueError):
    """A model that cannot be exported as asked (a map with no graph form, a missing extra)."""


class OutputError(AedetectError, OSError):
    """An output that cannot be written completely (disk full, permission, a failing writer):
    nothing is left under its final name, so a re-run writes it again."""


class OutputPathError(AedetectError):
    """An output path that would overwrite, or mix with, something the user owns."""


class OutputExistsError(AedetectError, FileExistsError):
    """An output path that already holds a file: nothing a user owns is written over."""
