"""The self-describing model file: safetensors weights plus one JSON metadata record.

Like timm's ``config.json`` beside ``model.safetensors``, but in one file: the safetensors
header carries ``{"aedetect": "<json>"}`` with the aedetect version, the file format version,
the task, the full config (model, preprocessing, training), a training summary, the
calibration, a SHA-256 of the weights (``sha256``) and a SHA-256 of the whole record
(``record_sha256``: every metadata key, the weights' digest included), so an edited threshold,
task or activation is refused like a flipped weight byte. Loading rebuilds
``ConvAutoencoder(config)`` without the training code and never unpickles anything.

Loading reads the safetensors header first and checks every tensor's name and shape against
the config (the expected shapes come from a model built on PyTorch's ``meta`` device, which
allocates nothing), so a small file whose metadata claims a huge architecture is refused
before any memory is spent on it. Files of format 1 (before ``record_sha256``) load with a
warning.

The training state for ``--resume`` (optimizer moments, epoch, history) uses the same
container: optimizer tensors are flattened into named tensors, scalars go to the JSON.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aedetect.version import __version__
from aedetect.core.pretrained import resolve_model_path
from aedetect.core.config import Config
from aedetect.core.heads import validate
from aedetect.core.modelfile.header import RECORD_KEY, check_record, parse_metadata, record_digest
from aedetect.core.modelfile.limits import check_model_limits
from aedetect.errors import ConfigError, ModelFileError
from aedetect.core.model.fastmath import preferred_memory_format
from aedetect.util.fsutil import atomic_path
from aedetect.core.model.cae import ConvAutoencoder

FORMAT = "aedetect-model"
FORMAT_VERSION = 2  # 2: metadata covered by record_sha256
META_KEY = "aedetect"
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header

log = logging.getLogger("aedetect")


@dataclass
class ModelFile:
    """A loaded model file: the rebuilt model and everything its metadata says."""

    model: ConvAutoencoder
    config: Config
    metadata: dict[str, Any]
    path: str = ""

    @property
    def calibration(self) -> dict[str, Any]:
        return self.metadata.get("calibration", {})

    @property
    def training(self) -> dict[str, Any]:
        return self.metadata.get("training", {})


@dataclass
class TrainingState:
    """What ``--resume`` needs beyond the weights."""

    model_state: dict[str, Tensor]
    best_state: dict[str, Tensor]
    optimizer_state: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def _digest(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _atomic_save(tensors: dict[str, Tensor], path: Path, meta: dict[str, str], overwrite: bool = True) -> None:
    from safetensors.torch import save_file

    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
        try:  # read back: the header parses and every tensor's bytes lie within the file
            read_header(Path(tmp))
        except ModelFileError as e:
            raise OSError(errno.EIO, f"the written file does not read back ({e})") from None


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The safetensors header of ``path``: tensor entries ({name: {dtype, shape, data_offsets}})
    and the string metadata, read without loading any tensor. Bounds are checked against the
    file size, so a damaged length field is an error, not a huge read."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"header length {n} exceeds the file ({size} bytes)")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        raw_meta = header.pop("__metadata__", None) or {}
        for name, entry in header.items():
            shape, (start, end) = entry["shape"], entry["data_offsets"]
            if not all(isinstance(d, int) and d >= 0 for d in shape) or not 0 <= start <= end <= size - 8 - n:
                raise ValueError(f"tensor {name}: shape or offsets out of range")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: not a readable model file, truncated or corrupt ({e})") from None
    return header, raw_meta


def _metadata(path: Path, raw_meta: dict[str, str]) -> dict[str, Any]:
    meta = parse_metadata(path, raw_meta)
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: metadata is not a JSON object")
    return meta


def _load_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: not a readable model file, truncated or corrupt ({e})") from None


def _check_shapes(path: Path, config: Config, header: dict[str, Any]) -> None:
    """Names and shapes of the file's tensors against the model ``config`` describes, built on
    the ``meta`` device (no memory): refuses a crafted header before anything is allocated."""
    with torch.device("meta"):
        expected = ConvAutoencoder(config.model).state_dict()
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise ModelFileError(f"{path}: weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in expected.items():
        if tuple(v.shape) != tuple(header[k]["shape"]):
            raise ModelFileError(f"{path}: tensor {k} has shape {tuple(header[k]['shape'])}, "
                                 f"the config needs {tuple(v.shape)}")


def save_model(path: str | Path, model: nn.Module, config: Config, *, training: dict[str, Any] | None = None,
               calibration: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
               overwrite: bool = True) -> Path:
    """Write weights + metadata atomically to ``path`` (parent folders are created);
    ``overwrite=False`` refuses an existing file, race-free (a user-chosen output path)."""
    p = Path(path)
    state = {k: v for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "aedetect_version": __version__,
        "task": config.task,
        "config": config.to_dict(),
        "preprocessing": {"channels": config.data.channels, "size": config.data.size,
                          "resize": config.data.resize, "scaling": config.data.scaling},
        "training": training or {},
        "calibration": calibration or {},
        "sha256": _digest(state),
    }
    if extra:
        meta.update({k: v for k, v in extra.items() if k != RECORD_KEY})
    meta[RECORD_KEY] = record_digest(meta)
    _atomic_save(state, p, {META_KEY: json.dumps(meta)}, overwrite=overwrite)
    return p


@dataclass(frozen=True)
class ModelRecord:
    """A model file read and checked once (:func:`read_record`): its resolved path, metadata,
    validated config and tensor entries; :func:`load_record` builds the model from it without
    reading or resolving the file again."""

    path: Path
    meta: dict[str, Any]
    config: Config
    entries: dict[str, Any]


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ModelFile:
    """Rebuild the model from its file (or a shipped one, ``pretrained:NAME``), checking format
    version, integrity and shapes."""
    return load_record(read_record(path), device)


def load_record(record: ModelRecord, device: str | torch.device = "cpu") -> ModelFile:
    """The model of a file :func:`read_record` has read and checked: shapes, weights and their
    checksum (the rest of :func:`load_model`)."""
    p, meta, config = record.path, record.meta, record.config
    _check_shapes(p, config, record.entries)  # before any tensor is read or any layer built
    tensors = _load_tensors(p)
    if meta.get("sha256") != _digest(tensors):
        raise ModelFileError(f"{p}: weights do not match their checksum (file tampered with or damaged)")
    model = ConvAutoencoder(config.model)
    model.load_state_dict(tensors)
    model.to(device).eval()
    # The layout training used (aedetect.core.model.fastmath): 1.55x faster CPU inference, same outputs.
    model.to(memory_format=preferred_memory_format(config.model.arch, device, config.train.channels_last))
    return ModelFile(model=model, config=config, metadata=meta, path=str(p))


def read_record(path: str | Path) -> ModelRecord:
    """A model file's resolved path, metadata, validated config and tensor entries: format,
    version, record checksum, config and limits, everything that needs no tensor read and no
    layer built (not even on the meta device, whose first use imports ~150 MB of PyTorch's
    shape machinery), so a caller can refuse a file on its metadata (an anomaly model's
    calibration fields) before :func:`load_record` spends anything on it. The one read of a
    command: the path is resolved and the header read once."""
    p = resolve_model_path(path)
    entries, raw = read_header(p)
    meta = _metadata(p, raw)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{p}: format {meta.get('format')!r} is not {FORMAT!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{p}: file format version {version} is newer than this aedetect "
                             f"understands ({FORMAT_VERSION}); upgrade aedetect")
    # In this order, each step bounded by what the last one proved: the record's checksum (an
    # edited config is refused before it costs anything), the config's values, its sizes
    # against the limits (a crafted file with a recomputed checksum), then the tensor shapes
    # (built on the meta device), then the weights and their checksum.
    check_record(p, meta, version)
    try:
        config = validate(Config.from_dict(meta["config"]))
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{p}: invalid config in metadata ({e})") from None
    check_model_limits(p, config)
    return ModelRecord(p, meta, config, entries)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a model file, without building the model or reading its tensors."""
    p = resolve_model_path(path)
    return _metadata(p, read_header(p)[1])


# ---- training state for --resume ---------------------------------------------------------

def save_training_state(path: str | Path, state: TrainingState) -> None:
    """Flatten optimizer state into named tensors; scalars and param groups go to JSON."""
    tensors: dict[str, Tensor] = {}
    for k, v in state.model_state.items():
        tensors[f"model.{k}"] = v
    for k, v in state.best_state.items():
        tensors[f"best.{k}"] = v
    opt_scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state.optimizer_state.get("state", {}).items():
        for name, val in pstate.items():
            if isinstance(val, Tensor):
                tensors[f"opt.{pid}.{name}"] = val
            else:
                opt_scalars.setdefault(str(pid), {})[name] = val
    meta = {"param_groups": state.optimizer_state.get("param_groups", []), "opt_scalars": opt_scalars,
            "info": state.info}
    _atomic_save(tensors, Path(path), {"aedetect-training-state": json.dumps(meta)})


def load_training_state(path: str | Path) -> TrainingState:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["aedetect-training-state"])
        _check_state_record(p, meta)  # before the tensors are read
        tensors = load_file(str(p))
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise ModelFileError(f"{p}: not a readable training checkpoint ({e})") from None
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    opt_state: dict[int, dict[str, Any]] = {}
    try:
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = v
        for pid, scalars in meta["opt_scalars"].items():
            opt_state.setdefault(int(pid), {}).update(scalars)
    except (ValueError, TypeError, AttributeError) as e:
        raise ModelFileError(f"{p}: optimizer state of the training checkpoint is malformed ({e})") from None
    return TrainingState(model_state=model_state, best_state=best_state,
                         optimizer_state={"state": opt_state, "param_groups": meta["param_groups"]},
                         info=meta["info"])


def _check_state_record(p: Path, meta: Any) -> None:
    """The JSON of a training checkpoint holds what resuming reads, in the types it reads them:
    a damaged or hand-made checkpoint is one line, not a KeyError in the middle of --resume."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{p}: training checkpoint record is not a JSON object")
    for key, kind in (("info", dict), ("opt_scalars", dict), ("param_groups", list)):
        if not isinstance(meta.get(key), kind):
            raise ModelFileError(f"{p}: training checkpoint without its {key} (damaged or not written by aedetect fit)")
    if not isinstance(meta["info"].get("config"), dict):
        raise ModelFileError(f"{p}: training checkpoint without the run's config; it cannot be resumed")
