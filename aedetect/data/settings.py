"""How images become tensors: the data part of the config, kept here so the data layer
needs nothing above it (``aedetect.core.config.Config`` holds one as ``Config.data``)."""

from __future__ import annotations

from dataclasses import dataclass

SCALINGS = ("unit", "symmetric")
RESIZE_POLICIES = ("resize", "center_crop", "pad_crop", "none")


@dataclass
class DataConfig:
    """How images become tensors: channel count, size policy and value scaling."""

    channels: int = 1
    size: tuple[int, int] | None = None
    resize: str = "resize"
    scaling: str = "unit"
    # Without ``size``: the most common size of the images, brought down (aspect kept) so
    # that its longer side is at most this (0 = no limit); a 4000x3000 photo folder would
    # otherwise make a model no CPU trains.
    max_side: int = 256
