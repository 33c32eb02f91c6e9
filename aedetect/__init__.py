"""aedetect: convolutional-autoencoder anomaly detection and denoising for image folders."""

__version__ = "0.1.0"

from aedetect.core.modelfile import ModelFile  # noqa: E402
from aedetect.core.modelfile import load_model as load  # noqa: E402
from aedetect.core.config import Config  # noqa: E402
from aedetect.core.cae import ConvAutoencoder  # noqa: E402

from aedetect.anomaly.detector import AnomalyDetector, AnomalyResult  # noqa: E402
from aedetect.denoise.denoiser import Denoiser  # noqa: E402

__all__ = ["AnomalyDetector", "AnomalyResult", "Config", "ConvAutoencoder", "Denoiser", "ModelFile",
           "__version__", "load"]
