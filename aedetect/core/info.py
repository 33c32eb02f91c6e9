"""What ``aedetect info`` reports, as a plain dict (the ``--json`` output)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aedetect.core.modelfile import load_model
from aedetect.errors import ConfigError
from aedetect.core.cae import ConvAutoencoder
from aedetect.core.presets import PRESETS, build_config


def describe(target: str) -> dict[str, Any]:
    """Parameter counts (total, encoder, decoder), config and metadata of a file or preset."""
    if target in PRESETS:
        cfg = build_config(target)
        model = ConvAutoencoder(cfg.model)
        return {"kind": "preset", "source": "preset", "task": cfg.task, **model.parameter_counts(),
                "config": cfg.to_dict()}
    if not Path(target).exists():
        raise ConfigError(f"{target}: neither a model file nor a preset ({', '.join(PRESETS)})")
    mf = load_model(target)
    meta = mf.metadata
    return {"kind": "model", "source": "model file", "task": mf.config.task, **mf.model.parameter_counts(),
            "config": mf.config.to_dict(), "aedetect_version": meta.get("aedetect_version"),
            "format_version": meta.get("format_version"), "preprocessing": meta.get("preprocessing"),
            "training": meta.get("training"), "calibration": meta.get("calibration"),
            "noise": (mf.config.denoise or None)}
