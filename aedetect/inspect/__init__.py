"""Looking inside a model: filters, activations, interpolation, latent maps, run metrics."""

from aedetect.inspect.report import PICTURES, InspectResult, inspect_model

__all__ = ["PICTURES", "InspectResult", "inspect_model"]
