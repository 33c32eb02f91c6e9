"""Looking inside a model: filters, activations, interpolation, latent maps, run metrics."""

from aedetect.inspection.report import PICTURES, InspectResult, inspect_model

__all__ = ["PICTURES", "InspectResult", "inspect_model"]
