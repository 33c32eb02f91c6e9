"""The task-head interface, the defaults every head starts from, and the registry.

The core never imports a head. A head is a class named in the ``aedetect.heads`` entry-point
group of an installed distribution (aedetect's own two are declared in pyproject.toml), or
one registered in-process with :func:`register_head`; :func:`get_head` imports it on first
use. :func:`validate` checks a whole config, the head's own section included, where a config
enters the program (presets, a model file, fit); the config itself never asks the registry.
A third-party head plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from aedetect.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from aedetect.core.config import Config
    from aedetect.data.imageset import ImageSet

ENTRY_POINT_GROUP = "aedetect.heads"

# A head's on-the-fly input corruption for training: (clean batch, generator) -> corrupted batch.
Corrupt = Callable[["torch.Tensor", "torch.Generator"], "torch.Tensor"]


class TaskHead(Protocol):
    name: str
    # True when training_data() builds its own images (denoise crops), so a dataset's
    # test split is not comparable with the training loss.
    builds_own_data: bool

    def validate(self, cfg: Config) -> None:
        """Check the head's own settings (``cfg.anomaly`` / ``cfg.denoise``); ConfigError if bad."""

    def ready(self, cfg: Config) -> None:
        """Check what training with ``cfg`` needs beyond the settings (files, installed
        packages), before the first epoch; not run when a model file is loaded, which must
        score without them."""

    def training_data(self, data: str | ImageSet, cfg: Config, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
        """The images to train on, from the ``DATA`` argument of ``aedetect fit``."""

    def calibration_split(self, train: ImageSet, val: ImageSet, cfg: Config) -> tuple[ImageSet, ImageSet]:
        """(images to train on, held-out images to calibrate on)."""

    def corruption(self, cfg: Config) -> Corrupt | None:
        """The on-the-fly input corruption for training, or None to reconstruct the input."""

    def plan(self, cfg: Config, train: ImageSet, holdout: ImageSet, early_stopping: ImageSet | None) -> Config:
        """Before training: the config to train with, ``cfg`` or a changed copy (the anomaly
        head's has ``model.arch = none`` where no network needs training); ``cfg`` itself is
        left as the caller gave it."""

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None, early_stopping: ImageSet | None = None) -> dict[str, Any]:
        """Fitted parameters saved in the model file's ``calibration`` record; ``train``: the
        images the model trained on, for heads that keep something of them; ``early_stopping``:
        the early-stopping split, for heads that can use more held-out images."""


class BaseHead:
    """Plain reconstruction defaults every head starts from: the images as given, the
    validation split for calibration, no corruption, nothing to calibrate."""

    name = "base"
    builds_own_data = False

    def validate(self, cfg: Config) -> None:
        return None

    def ready(self, cfg: Config) -> None:
        return None

    def training_data(self, data: str | ImageSet, cfg: Config, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
        from aedetect.data.imageset import ImageSet  # lazy: the registry stays torch-free
        from aedetect.data.sources import load_training_data

        if isinstance(data, ImageSet):
            return data
        return load_training_data(data, cfg.data, normal_class=normal_class, data_root=data_root,
                                  limit=cfg.train.max_images)

    def calibration_split(self, train: ImageSet, val: ImageSet, cfg: Config) -> tuple[ImageSet, ImageSet]:
        return train, val

    def corruption(self, cfg: Config) -> Corrupt | None:
        return None

    def plan(self, cfg: Config, train: ImageSet, holdout: ImageSet, early_stopping: ImageSet | None) -> Config:
        return cfg

    def calibrate(self, model: nn.Module, holdout: ImageSet, cfg: Config, device: torch.device,
                  train: ImageSet | None = None, early_stopping: ImageSet | None = None) -> dict[str, Any]:
        return {}


_registered: dict[str, type] = {}


def register_head(name: str, cls: type) -> None:
    """Make ``cls`` the head for ``Config.task == name`` in this process (before entry points)."""
    _registered[name] = cls


def _installed() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def head_names() -> list[str]:
    """Every task name a config may use: registered in-process or installed."""
    return sorted(set(_registered) | set(_installed()))


def get_head(task: str) -> TaskHead:
    """A new head for ``cfg.task``; importing it on first use, so one head never imports another."""
    cls = _registered.get(task)
    if cls is None:
        ep = _installed().get(task)
        if ep is None:
            names = head_names()
            if not names:
                raise ConfigError(f"task: {task!r}: no task heads are installed (entry-point group "
                                  f"{ENTRY_POINT_GROUP!r}); install aedetect with pip so its metadata exists")
            raise ConfigError(f"task: {task!r} is not one of {', '.join(names)}")
        cls = _registered[task] = ep.load()
    return cls()  # type: ignore[no-any-return]


def validate(cfg: Config) -> Config:
    """Check a whole config: the task first (an unknown one is the first error), then the
    model, data and train sections (:meth:`Config.validate`, which fills the derived fields),
    then the head's own section. Returns ``cfg`` for chaining."""
    head = get_head(cfg.task)
    cfg.validate()
    head.validate(cfg)
    return cfg
