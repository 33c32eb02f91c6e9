"""A model file read without PyTorch: its metadata, tensor shapes and parameter counts.

``aedetect info MODEL`` answers from this in a fraction of a second, where building the model
costs the seconds and hundreds of MB of ``import torch`` (docs/benchmarks/speed.md, start-up). The weights
are still read and checked against the file's SHA-256 (with numpy), the same digest as
:func:`aedetect.core.modelfile.file._digest` computes on tensors (tests/test_startup.py holds the
two equal), so a damaged file is refused here as it is on loading.
"""

from __future__ import annotations

import hashlib
import logging
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aedetect.errors import ModelFileError

log = logging.getLogger("aedetect")

META_KEY = "aedetect"
RECORD_KEY = "record_sha256"  # the digest of the metadata record (format 2 on)
# The prefixes of ConvAutoencoder's encoder_modules() and decoder_modules().
ENCODER_PREFIXES = ("encoder.", "to_latent.", "mlp_encoder.")
DECODER_PREFIXES = ("from_latent.", "decoder.", "head.", "mlp_decoder.")
# State-dict entries that are buffers, not parameters (BatchNorm statistics).
BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


@dataclass
class ModelHeader:
    """What a model file says about itself, without the model built."""

    metadata: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]

    def parameter_counts(self) -> dict[str, int]:
        """Total, encoder (incl. the code layer) and decoder parameter counts, as
        :meth:`ConvAutoencoder.parameter_counts` gives them."""
        def count(prefixes: tuple[str, ...]) -> int:
            n = 0
            for k, shape in self.shapes.items():
                if k.startswith(prefixes) and not k.endswith(BUFFER_SUFFIXES):
                    size = 1
                    for d in shape:
                        size *= d
                    n += size
            return n

        enc, dec = count(ENCODER_PREFIXES), count(DECODER_PREFIXES)
        return {"parameters": enc + dec, "encoder_parameters": enc, "decoder_parameters": dec}


def _numpy_digest(arrays: dict[str, Any]) -> str:
    """modelfile._digest on numpy arrays: name, torch's dtype name, shape, bytes, sorted by name."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = arrays[k]
        h.update(k.encode())
        h.update(f"torch.{a.dtype.name}".encode())
        h.update(str(tuple(a.shape)).encode())
        h.update(a.tobytes() if a.size else b"")
    return h.hexdigest()


def record_digest(meta: dict[str, Any]) -> str:
    """SHA-256 of the metadata record without its own digest, in canonical JSON (sorted keys):
    any change of a value (a threshold digit, the task, the activation) changes it."""
    body = {k: v for k, v in meta.items() if k != RECORD_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_record(path: Path, meta: dict[str, Any], version: int) -> None:
    """The metadata digest: required from format 2 on; a format-1 file loads with a warning."""
    if RECORD_KEY in meta:
        if meta[RECORD_KEY] != record_digest(meta):
            raise ModelFileError(f"{path}: metadata does not match its checksum (config, task or "
                                 "calibration edited, or the file is damaged)")
    elif version >= 2:
        raise ModelFileError(f"{path}: metadata checksum missing (file tampered with or damaged)")
    else:
        log.warning("%s: an older model file (format %d) without a metadata checksum: its config and "
                    "calibration cannot be verified (re-save it, e.g. with aedetect calibrate)", path, version)


def parse_metadata(path: str | Path, raw: dict[str, str]) -> Any:
    """The aedetect record of a safetensors header's metadata (shared with modelfile._read)."""
    if META_KEY not in raw:
        raise ModelFileError(f"{path}: a safetensors file without aedetect metadata (not an aedetect model)")
    try:
        return json.loads(raw[META_KEY])
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({e})") from None


def read_header(path: str | Path, verify: bool = True) -> ModelHeader:
    """Metadata and shapes of an aedetect model file; ``verify``: also check the weights'
    checksum. A missing, unreadable or non-aedetect file is one :class:`ModelFileError`."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such model file")
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="numpy") as f:
            raw = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            meta = parse_metadata(p, raw)
            if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
                raise ModelFileError(f"{p}: metadata without a config (not an aedetect model file)")
            version = meta.get("format_version", 1)
            check_record(p, meta, version if isinstance(version, int) else 1)  # before any tensor is read
            arrays = {k: f.get_tensor(k) for k in f.keys()} if verify else {}
    except ModelFileError:
        raise
    except Exception as e:  # SafetensorError, OSError, a dtype numpy lacks: all "not readable"
        raise ModelFileError(f"{p}: not a readable model file, truncated or corrupt ({e})") from None
    if verify and meta.get("sha256") != _numpy_digest(arrays):
        raise ModelFileError(f"{p}: weights do not match their checksum (file tampered with or damaged)")
    return ModelHeader(metadata=meta, shapes=shapes)
