"""Neural network modules (no training code)."""

from aedetect.models.cae import ConvAutoencoder

__all__ = ["ConvAutoencoder"]
