"""An anomaly model file's calibration record, checked field by field on loading.

Scoring reads the record in many places (the threshold, the spread of the normalised score,
the scales and the bank of the latent kNN part, the feature bank, the learned map's network,
the pretrained extractor). A record whose checksum was recomputed after an edit, or a damaged
older file, used to fail there with a KeyError, a TypeError, a reshape's ValueError, a
binascii.Error or a SafetensorError, after the outputs had been started. Here every field the
settings need is checked once, before any image is decoded: its type, its shape, the bytes
behind its base64 text, and sizes that would allocate without bound (``latent_grid 3000``
asked for 46 GB). Each failure is one :class:`ModelFileError` line naming the file and the
field.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aedetect.core.config import Config
from aedetect.errors import ConfigError, ModelFileError
from aedetect.anomaly.maps.registry import BACKBONE_KEY, family_of
from aedetect.anomaly.settings import AnomalySettings

if TYPE_CHECKING:
    from aedetect.core.modelfile.file import ModelRecord

MAX_LATENT_GRID = 64  # the default is 7; the bank holds grid^2 x channels numbers per image


def _bad(path: str | Path, field: str, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: calibration.{field} {what} (file damaged or edited)")


def _number(cal: dict[str, Any], field: str, path: str | Path, *, positive: bool = False,
            required: bool = True) -> None:
    v = cal.get(field)
    if v is None and not required:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
        what = "a finite number > 0" if positive else "a finite number"
        raise _bad(path, field, f"is {v!r}, not {what}" if field in cal else "is missing")


def _base64(d: dict[str, Any], key: str, field: str, path: str | Path) -> bytes:
    text = d.get(key)
    if not isinstance(text, str):
        raise _bad(path, field, f"has no {key} text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _bad(path, field, f"is not valid base64 ({e})") from None


def _bank(cal: dict[str, Any], field: str, path: str | Path, width: int | None = None) -> int:
    """A float16 bank ``{"shape": [N, D], "float16_base64": ...}`` whose bytes are N x D x 2;
    ``width``: the D the settings need. Returns N."""
    d = cal.get(field)
    if not isinstance(d, dict):
        raise _bad(path, field, "is missing" if d is None else f"is {type(d).__name__}, not a bank")
    shape = d.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise _bad(path, field, f"has shape {shape!r}, not [rows, columns] of positive whole numbers")
    raw = _base64(d, "float16_base64", field, path)
    if len(raw) != shape[0] * shape[1] * 2:
        raise _bad(path, field, f"holds {len(raw)} bytes, its shape {shape} needs {shape[0] * shape[1] * 2}")
    if width is not None and shape[1] != width:
        raise _bad(path, field, f"has vectors of {shape[1]} numbers, the model's features have {width}")
    return shape[0]


def _network(cal: dict[str, Any], field: str, path: str | Path, decode: Callable[[dict[str, Any], str], Any],
             bounds: tuple[tuple[str, int], ...] = ()) -> None:
    """A network stored as base64 safetensors bytes: sizes ``bounds`` ((key, most)) checked,
    then decoded once by ``decode`` (on the CPU, before scoring; what fails here would have
    failed there)."""
    d = cal.get(field)
    if not isinstance(d, dict):
        raise _bad(path, field, "is missing" if d is None else f"is {type(d).__name__}, not a stored network")
    for key, hi in bounds:
        v = d.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
            raise _bad(path, f"{field}.{key}", f"is {v!r}, not a whole number in [1, {hi}]")
    _base64(d, "safetensors_base64", field, path)
    import torch

    try:
        with torch.random.fork_rng(devices=[]):  # the network's initial weights draw from the global generator
            decode(d, "cpu")
    except Exception as e:  # SafetensorError, a missing or misshapen tensor: the bytes are not the network
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise _bad(path, field, f"does not decode to the network ({first})") from None


class _RecordCheck:
    """The checks above for one record, as a map family's ``check_record`` takes them
    (aedetect.anomaly.maps.family.RecordCheck)."""

    def __init__(self, cal: dict[str, Any], path: str | Path) -> None:
        self.cal, self.path = cal, path

    def bank(self, field: str) -> int:
        return _bank(self.cal, field, self.path)

    def network(self, field: str, decode: Callable[[dict[str, Any], str], Any],
                bounds: tuple[tuple[str, int], ...] = ()) -> None:
        _network(self.cal, field, self.path, decode, bounds)

    def bad(self, field: str, what: str) -> ModelFileError:
        return _bad(self.path, field, what)


def settings_of(cal: dict[str, Any], cfg: Config, path: str | Path) -> AnomalySettings:
    """The scoring settings the record holds (else the config's), as a model-file error if
    invalid: a bad ``settings.map`` is a damaged file (exit 1), not a usage error (64)."""
    raw = cal.get("settings", cfg.anomaly)
    if not isinstance(raw, dict):
        raise _bad(path, "settings", f"is {type(raw).__name__}, not a table")
    try:
        return AnomalySettings.from_config(raw)
    except (ConfigError, TypeError, ValueError) as e:
        raise _bad(path, "settings", f"are invalid ({e})") from None


def check_anomaly_model_file(path: str | Path) -> "ModelRecord":
    """A model file's metadata, limits and (for an anomaly model) calibration fields, checked
    before the model is loaded: the refusal then costs no layer, tensor or network. Returns the
    record read, which :meth:`AnomalyDetector.from_record` loads without reading the file again."""
    from aedetect.core.modelfile.file import read_record

    record = read_record(path)
    meta, cfg = record.meta, record.config
    if cfg.task == "anomaly" and "threshold" in (meta.get("calibration") or {}):
        check_anomaly_calibration(meta["calibration"], cfg, path)
    return record


def check_anomaly_calibration(cal: Any, cfg: Config, path: str | Path) -> AnomalySettings:
    """Every calibration field the scoring settings need, checked once on loading; returns the
    settings. See the module docstring."""
    if not isinstance(cal, dict):
        raise ModelFileError(f"{path}: calibration is {type(cal).__name__}, not a table (file damaged or edited)")
    s = settings_of(cal, cfg, path)
    _number(cal, "threshold", path)
    _number(cal, "pixel_threshold", path)
    _number(cal, "spread", path, positive=True)
    _number(cal, "normal_median", path, required=False)
    _number(cal, "map_display_max", path, required=False)
    if not 1 <= s.latent_grid <= MAX_LATENT_GRID:
        raise _bad(path, "settings.latent_grid", f"is {s.latent_grid}, above {MAX_LATENT_GRID}")
    if s.latent == "knn":
        _number(cal, "recon_scale", path, positive=True)
        _number(cal, "latent_scale", path, positive=True)
        rows = _bank(cal, "latent_bank", path)
        if s.latent_k > rows:
            raise _bad(path, "latent_bank", f"has {rows} vectors, fewer than latent_k = {s.latent_k}")
    family = family_of(s)
    family.check_record(_RecordCheck(cal, path), s, cfg)
    if family.needs_backbone or s.latent_source == "pretrained":
        from aedetect.anomaly.maps.backbone import decode_backbone

        _network(cal, BACKBONE_KEY, path, decode_backbone)
    return s
