"""aedetect: convolutional-autoencoder anomaly detection and denoising for image folders."""

__version__ = "0.1.0"

from aedetect.checkpoint import ModelFile  # noqa: E402
from aedetect.checkpoint import load_model as load  # noqa: E402
from aedetect.config import Config  # noqa: E402
from aedetect.models.cae import ConvAutoencoder  # noqa: E402

from aedetect.detector import AnomalyDetector, AnomalyResult  # noqa: E402
from aedetect.denoise import Denoiser  # noqa: E402

__all__ = ["AnomalyDetector", "AnomalyResult", "Config", "ConvAutoencoder", "Denoiser", "ModelFile",
           "__version__", "load"]
