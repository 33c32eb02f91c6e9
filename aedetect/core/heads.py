"""The task-head interface and its registry."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet
from aedetect.core.train import Corrupt


class TaskHead(Protocol):
    name: str
    # True when training_data() builds its own images (denoise crops), so a dataset's
    # test split is not comparable with the training loss.
    builds_own_data: bool

    def validate(self, cfg: Config) -> None:
        """Check the head's own settings (``cfg.anomaly`` / ``cfg.denoise``); ConfigError if bad."""

    def training_data(self, data: str | ImageSet, cfg: Config, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
        """The images to train on, from the ``DATA`` argument of ``aedetect fit``."""

    def calibration_split(self, train: ImageSet, val: ImageSet, cfg: Config) -> tuple[ImageSet, ImageSet]:
        """(images to train on, held-out images to calibrate on)."""

    def corruption(self, cfg: Config) -> Corrupt | None:
        """The on-the-fly input corruption for training, or None to reconstruct the input."""

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None) -> dict[str, Any]:
        """Fitted parameters saved in the model file's ``calibration`` record; ``train``: the
        images the model trained on, for heads that keep something of them."""


class BaseHead:
    """Plain reconstruction defaults every head starts from: the images as given, the
    validation split for calibration, no corruption, nothing to calibrate."""

    name = "base"
    builds_own_data = False

    def validate(self, cfg: Config) -> None:
        return None

    def training_data(self, data: str | ImageSet, cfg: Config, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
        if isinstance(data, ImageSet):
            return data
        from aedetect.data.sources import load_training_data

        return load_training_data(data, cfg.data, normal_class=normal_class, data_root=data_root)

    def calibration_split(self, train: ImageSet, val: ImageSet, cfg: Config) -> tuple[ImageSet, ImageSet]:
        return train, val

    def corruption(self, cfg: Config) -> Corrupt | None:
        return None

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None) -> dict[str, Any]:
        return {}


def get_head(task: str) -> TaskHead:
    """The head for ``cfg.task``; heads register lazily so importing one does not import all."""
    if task == "anomaly":
        from aedetect.anomaly.head import AnomalyHead

        return AnomalyHead()
    if task == "denoise":
        from aedetect.denoise.head import DenoiseHead

        return DenoiseHead()
    from aedetect.errors import ConfigError

    raise ConfigError(f"task: {task!r} is not one of anomaly, denoise")
