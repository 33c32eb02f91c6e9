"""aedetect: convolutional-autoencoder anomaly detection and denoising for image folders.

The public API. Names are imported on first use (PEP 562), so ``import aedetect`` and the
CLI's ``--help`` do not pay for PyTorch until a model is needed.

Layout (docs/architecture.md): ``core`` (config, CAE, training loop, model file) and
``data`` (decoding, the image cache) below the heads ``anomaly`` and ``denoise`` and the
``inspect`` tools, with ``cli`` on top.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from aedetect.version import __version__

if TYPE_CHECKING:
    from aedetect.anomaly.detector import AnomalyDetector, AnomalyResult
    from aedetect.core.model.cae import ConvAutoencoder
    from aedetect.core.config import Config
    from aedetect.core.modelfile.file import ModelFile
    from aedetect.core.modelfile.file import load_model as load
    from aedetect.denoise.denoiser import Denoiser

_API = {
    "AnomalyDetector": ("aedetect.anomaly.detector", "AnomalyDetector"),
    "AnomalyResult": ("aedetect.anomaly.detector", "AnomalyResult"),
    "Config": ("aedetect.core.config", "Config"),
    "ConvAutoencoder": ("aedetect.core.model.cae", "ConvAutoencoder"),
    "Denoiser": ("aedetect.denoise.denoiser", "Denoiser"),
    "ModelFile": ("aedetect.core.modelfile.file", "ModelFile"),
    "load": ("aedetect.core.modelfile.file", "load_model"),
}

__all__ = ["AnomalyDetector", "AnomalyResult", "Config", "ConvAutoencoder", "Denoiser", "ModelFile",
           "__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'aedetect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
