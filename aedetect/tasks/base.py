"""The task-head interface and its registry."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from aedetect.config import Config
from aedetect.data.imageset import ImageSet
from aedetect.train import Corrupt


class TaskHead(Protocol):
    name: str

    def corruption(self, cfg: Config) -> Corrupt | None:
        """The on-the-fly input corruption for training, or None to reconstruct the input."""

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device) -> dict[str, Any]:
        """Fitted parameters saved in the model file's ``calibration`` record."""


class ReconstructionHead:
    """Plain reconstruction: no corruption, nothing to calibrate (the base of the anomaly head)."""

    name = "anomaly"

    def corruption(self, cfg: Config) -> Corrupt | None:
        return None

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device) -> dict[str, Any]:
        return {}


def get_head(task: str) -> TaskHead:
    """The head for ``cfg.task``; heads register lazily so importing one does not import all."""
    if task == "anomaly":
        from aedetect.tasks.anomaly import AnomalyHead

        return AnomalyHead()
    if task == "denoise":
        from aedetect.tasks.denoise import DenoiseHead

        return DenoiseHead()
    from aedetect.errors import ConfigError

    raise ConfigError(f"task: {task!r} is not one of anomaly, denoise")
