"""What ``aedetect info`` reports, as a plain dict (the ``--json`` output).

A model file is described from its header (:mod:`aedetect.core.modelfile.header`), without PyTorch: the
config is validated, the weights' checksum checked and the parameters counted from the
tensor shapes. A preset has no file, so its model is built (that one needs PyTorch).
"""

from __future__ import annotations

from typing import Any

from aedetect.core.config import Config
from aedetect.core.heads import validate
from aedetect.core.modelfile.header import read_header
from aedetect.core.presets import PRESETS, build_config
from aedetect.errors import ConfigError, ModelFileError

FORMAT = "aedetect-model"  # as aedetect.core.modelfile.file writes it


def describe(target: str) -> dict[str, Any]:
    """Parameter counts (total, encoder, decoder), config and metadata of a file or preset."""
    if target in PRESETS:
        from aedetect.core.model.cae import ConvAutoencoder

        cfg = build_config(target)
        model = ConvAutoencoder(cfg.model)
        return {"kind": "preset", "source": "preset", "task": cfg.task, **model.parameter_counts(),
                "config": cfg.to_dict()}
    from aedetect.core.pretrained import PREFIX, resolve_model_path

    shipped = target.startswith(PREFIX)
    path = resolve_model_path(target)
    if not path.exists():
        raise ConfigError(f"{target}: neither a model file nor a preset ({', '.join(PRESETS)}) "
                          f"nor a shipped model ({PREFIX}NAME)")
    head = read_header(path)
    meta = head.metadata
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{target}: format {meta.get('format')!r} is not {FORMAT!r}")
    try:
        config = validate(Config.from_dict(meta["config"]))
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{target}: invalid config in metadata ({e})") from None
    return {"kind": "model", "source": "shipped model" if shipped else "model file", "task": config.task, **head.parameter_counts(),
            "config": config.to_dict(), "aedetect_version": meta.get("aedetect_version"),
            "format_version": meta.get("format_version"), "preprocessing": meta.get("preprocessing"),
            "training": meta.get("training"), "calibration": meta.get("calibration"),
            "noise": (config.denoise or None)}
