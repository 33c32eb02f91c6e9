"""aedetect: convolutional-autoencoder anomaly detection and denoising for image folders."""

__version__ = "0.1.0"
