"""How images become tensors: the data part of the config, kept here so the data layer
needs nothing above it (``aedetect.core.config.Config`` holds one as ``Config.data``)."""

from __future__ import annotations

from dataclasses import dataclass

SCALINGS = ("unit", "symmetric")
RESIZE_POLICIES = ("resize", "center_crop", "pad_crop", "none")
TILE_CHOICES = ("auto", "off")  # or a whole number of pixels: the tile's side
# A tiled model keeps images at their own resolution up to this longer side; larger ones are
# shrunk to it (one log line), so one image's maps stay a bounded size (64 MB of float32 at
# 4096 x 4096) whatever camera took it.
MAX_IMAGE_SIDE = 4096


@dataclass
class DataConfig:
    """How images become tensors: channel count, size policy and value scaling.

    ``tile`` (anomaly models): ``auto`` scores large images in tiles at their own resolution
    where shrinking them to ``max_side`` would lose more than half their resolution; ``off``
    never tiles; a number is the tile's side, used wherever images are larger. A tiled model's
    ``size`` is the tile and ``image_size`` the size whole images are brought to before they
    are cut (set by ``fit``; None: not tiled, images are brought to ``size``).
    """

    channels: int = 1
    size: tuple[int, int] | None = None
    resize: str = "resize"
    scaling: str = "unit"
    # Without ``size``: the most common size of the images, brought down (aspect kept) so
    # that its longer side is at most this (0 = no limit); a 4000x3000 photo folder would
    # otherwise make a model no CPU trains.
    max_side: int = 256
    tile: str = "auto"
    image_size: tuple[int, int] | None = None


def tile_setting(tile: object) -> str | int:
    """``data.tile`` as ``"auto"``, ``"off"`` or a positive int; ValueError naming the choices."""
    text = str(tile).strip().lower()
    if text in TILE_CHOICES:
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"{tile!r} is not one of auto, off or a tile side in pixels (a whole number > 0)")


def tile_side(cfg: DataConfig, size: tuple[int, int]) -> int | None:
    """The tile side a fit uses for images of ``size`` (their most common size, at most
    :data:`MAX_IMAGE_SIDE` a side), or None to bring them to one model-sized image as before.

    ``auto`` tiles where ``max_side`` would shrink the longer side more than 2x: a 10-pixel
    scratch on a 2048-pixel photo is about one pixel at 256, while a 300x300 or 512x512
    folder keeps exactly its old behaviour (one shrunk image). The tile is then ``max_side``.
    A given ``size`` (``--size``) means "bring the images to this size": no tiling unless
    ``tile`` names a side.
    """
    setting = tile_setting(cfg.tile)
    if setting == "off":
        return None
    if setting == "auto":
        if cfg.size is not None or cfg.max_side <= 0 or max(size) <= 2 * cfg.max_side:
            return None
        return cfg.max_side
    return int(setting) if max(size) > int(setting) else None


def tile_starts(n: int, t: int) -> list[int]:
    """Where tiles of side ``t`` start along a side of ``n`` pixels: every 7/8 of a tile (so
    neighbours overlap by an eighth, and a defect on a tile's edge is whole in its neighbour),
    the last one flush with the edge; one tile at 0 where ``n <= t``."""
    if n <= t:
        return [0]
    stride = max(1, t * 7 // 8)
    starts = list(range(0, n - t, stride))
    return starts + [n - t]


def tiling_line(data: dict[str, object]) -> str | None:
    """One line for ``aedetect info``: how a tiled model scores an image (None: not tiled)."""
    image, tile = data.get("image_size"), data.get("size")
    if not image or not tile:
        return None
    ih, iw = (int(v) for v in image)  # type: ignore[union-attr]
    th, tw = (int(v) for v in tile)  # type: ignore[union-attr]
    n = len(tile_starts(ih, th)) * len(tile_starts(iw, tw))
    return (f"tiled: images are brought to {ih}x{iw} and scored in {n} "
            f"overlapping tiles of {th}x{tw}, maps stitched at full resolution (data.tile, docs/anomaly.md)")
