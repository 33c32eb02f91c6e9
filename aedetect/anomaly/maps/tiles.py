"""Full resolution: large images scored in overlapping tiles at their own resolution, the
tiles' maps stitched into one map of the whole image (``data.tile``, docs/anomaly.md).

Why: shrinking a 2048x2048 photograph to the model's 256 pixels makes a 10-pixel scratch one
pixel wide, below what any map can outline. A tiled model's ``data.size`` is the tile and
``data.image_size`` the size whole images are brought to; every image is cut into tiles
(:func:`tile_boxes`: every 7/8 of a tile, the last one flush with the edge), each tile is
scored by :func:`~aedetect.anomaly.maps.run.run_model` as any image of the model's size, and
the tiles' maps are averaged where they overlap (:func:`stitch`). The image score is then
computed from the stitched map by the same rule (``anomaly.score``) as for an untiled image.

The cost is one model pass per tile: time grows with the number of tiles (81 for a 2048x2048
image and 256-pixel tiles), memory is one group of tiles plus one image's maps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from aedetect.anomaly.maps.run import RawScores, image_score, run_model
from aedetect.anomaly.settings import AnomalySettings
from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, capped_size, fit_size
from aedetect.data.settings import MAX_IMAGE_SIDE, DataConfig, tile_setting, tile_side, tile_starts

log = logging.getLogger("aedetect")

Box = tuple[int, int]  # (top, left) of a tile

# Training tiles a fit keeps (a seeded sample of every tile of the training images), and tiles
# of the early-stopping images: the pretrained map's bank is a sample of 10,000 feature
# vectors, and 1,000 tiles of 256 pixels give 4 million to draw it from, in about 210 CPU-s of
# the extractor on this 2-core machine (0.21 s a tile); more tiles cost time (what they would
# add to quality is not measured).
MAX_TRAIN_TILES = 1000
MAX_VAL_TILES = 250
# Calibration: whole images (their score is a maximum over many tiles, so tiles would set the
# threshold far too low), as many as hold at most this many tiles in all (at least
# MIN_CALIB_IMAGES): 24 images of 2048x2048 at 256-pixel tiles.
MAX_CALIB_TILES = 2000
MIN_CALIB_IMAGES = 10
# Tiles of the calibration images the label-free selection ranks candidates on (its own cap,
# ``select_images``, is 256 images).
SELECT_TILES = 256


def is_tiled(cfg: Config | DataConfig) -> bool:
    """Whether a model scores in tiles (fit recorded a whole-image size beside the tile)."""
    d = cfg.data if isinstance(cfg, Config) else cfg
    return d.image_size is not None and d.size is not None


def tile_boxes(size: tuple[int, int], tile: tuple[int, int]) -> list[Box]:
    """(top, left) of every tile of an image of ``size``: the tiles cover every pixel, overlap
    by about an eighth of a tile, and the last row and column are flush with the edges. A side
    shorter than the tile gets one tile at 0 (:func:`cut` pads it)."""
    return [(t, l) for t in tile_starts(size[0], tile[0]) for l in tile_starts(size[1], tile[1])]


def cut(images: Tensor, tile: tuple[int, int]) -> tuple[Tensor, list[Box]]:
    """(N, C, H, W) -> (N x T, C, th, tw) tiles, image by image (image i's tiles are rows
    i*T..(i+1)*T-1), and the T boxes. A side shorter than the tile is padded by repeating its
    edge (a tile is always the model's size); :func:`stitch` drops the padding again."""
    n, c, h, w = images.shape
    th, tw = tile
    boxes = tile_boxes((h, w), tile)
    if h < th or w < tw:
        ph, pw = max(0, th - h), max(0, tw - w)
        padded = torch.nn.functional.pad(images.float(), (0, pw, 0, ph), mode="replicate").to(images.dtype)
    else:
        padded = images
    tiles = torch.stack([padded[:, :, t:t + th, l:l + tw] for t, l in boxes], 1)
    return tiles.reshape(n * len(boxes), c, th, tw), boxes


def stitch(tiles: Tensor, boxes: list[Box], size: tuple[int, int]) -> Tensor:
    """(N x T, C, th, tw) tiles (as :func:`cut` orders them) -> (N, C, H, W) float images,
    the mean of every tile that covers a pixel (overlaps are averaged, so a tile's edge, where
    its map sees least context, never decides a pixel alone)."""
    t = len(boxes)
    n = tiles.shape[0] // t
    c, th, tw = tiles.shape[1:]
    h, w = size
    out = torch.zeros((n, c, max(h, th), max(w, tw)), dtype=torch.float32, device=tiles.device)
    count = torch.zeros((1, 1, max(h, th), max(w, tw)), dtype=torch.float32, device=tiles.device)
    tiles = tiles.reshape(n, t, c, th, tw).float()
    for k, (top, left) in enumerate(boxes):
        out[:, :, top:top + th, left:left + tw] += tiles[:, k]
        count[:, :, top:top + th, left:left + tw] += 1
    return (out / count)[:, :, :h, :w]


@dataclass
class TiledScores:
    """What scoring whole images in tiles gives: ``raw`` as :func:`run_model` would for the
    whole images (stitched maps, inputs and reconstructions at full resolution, the image
    score of each stitched map; no codes), and the latent vectors of every tile with the image
    each came from (``owner``), for a latent kNN part."""

    raw: RawScores
    tile_codes: Tensor | None
    owner: Tensor


@torch.no_grad()
def run_tiled(model: nn.Module, images: Tensor, max_value: float, cfg: Config, s: AnomalySettings,
              device: torch.device | str = "cpu", batch_size: int = 64, keep_images: bool = True,
              on_batch: Any = None, **parts: Any) -> TiledScores:
    """Score whole images (N, C, H, W) of ``cfg.data.image_size`` in tiles of ``cfg.data.size``:
    a group of images at a time, as many as give about ``batch_size`` tiles (one image at
    least), so memory is one group's tiles and maps whatever the number of images.
    ``on_batch(n)`` reports images done; ``parts``: ``bank``, ``segmenter``, ``backbone`` as
    :func:`run_model` takes them."""
    tile = tuple(cfg.data.size)  # type: ignore[arg-type]
    size = tuple(images.shape[-2:])
    boxes = tile_boxes(size, tile)  # type: ignore[arg-type]
    per_group = max(1, batch_size // len(boxes))
    maps, scores, ins, recs, codes, owner = [], [], [], [], [], []
    for i in range(0, images.shape[0], per_group):
        group = images[i:i + per_group]
        tiles, _ = cut(group, tile)  # type: ignore[arg-type]
        raw = run_model(model, tiles, max_value, cfg, s, device, batch_size=batch_size, keep_images=keep_images,
                        **parts)
        m = stitch(raw.maps, boxes, size)  # type: ignore[arg-type]
        maps.append(m)
        scores.append(image_score(m, s.score, s.topk_percent))
        if keep_images:
            ins.append(stitch(raw.inputs, boxes, size))  # type: ignore[arg-type]
            recs.append(stitch(raw.recon, boxes, size))  # type: ignore[arg-type]
        if raw.codes is not None:
            codes.append(raw.codes)
        owner.append(torch.arange(i, i + group.shape[0]).repeat_interleave(len(boxes)))
        if on_batch is not None:
            on_batch(group.shape[0])
    empty = torch.empty(0)
    raw_all = RawScores(inputs=torch.cat(ins) if ins else empty, recon=torch.cat(recs) if recs else empty,
                        maps=torch.cat(maps), recon_scores=torch.cat(scores), codes=None)
    return TiledScores(raw_all, torch.cat(codes) if codes else None, torch.cat(owner))


def to_image_size(data: ImageSet, cfg: Config) -> ImageSet:
    """Whole images brought to a tiled model's ``data.image_size`` by its size policy (images
    loaded through the model's DataConfig are there already; arrays passed in memory may not
    be)."""
    size = tuple(cfg.data.image_size)  # type: ignore[arg-type]
    if tuple(data.images.shape[-2:]) == size:
        return data
    images = torch.stack([fit_size(x, size, cfg.data.resize) for x in data.images])  # type: ignore[arg-type]
    masks = None if data.masks is None else torch.stack([fit_size(m, size, cfg.data.resize) for m in data.masks])
    return replace(data, images=images, masks=masks)


def loading_config(d: DataConfig) -> DataConfig:
    """How a fit that may tile decodes its images: at their own resolution (longer side at
    most :data:`MAX_IMAGE_SIDE`) wherever tiling can apply, so :func:`choose_tiling` sees them
    before anything is shrunk; ``d`` itself where it cannot (``tile = off``; ``auto`` with a
    given size or no ``max_side``; a model already tiled)."""
    setting = tile_setting(d.tile)
    if d.image_size is not None or setting == "off":
        return d
    if setting == "auto" and (d.size is not None or d.max_side <= 0):
        return d
    return replace(d, size=None, max_side=MAX_IMAGE_SIDE)


def choose_tiling(images: ImageSet, cfg: Config, shrink: bool) -> ImageSet:
    """Decide whether a fit tiles (:func:`aedetect.data.settings.tile_side`), on images of one
    size (their most common one, as loaded); sets ``cfg.data.size`` to the tile and
    ``cfg.data.image_size`` to the whole images' size where it does. Images larger than
    :data:`MAX_IMAGE_SIDE` are shrunk to it (one log line). Where it does not tile and the
    images were decoded by :func:`loading_config` (``shrink``), they are brought to the size
    the untiled rule gives (the most common size capped at ``data.max_side``), which is what
    decoding with the model's own DataConfig gives: an untiled fit is unchanged."""
    from aedetect.core.heads import validate

    d = cfg.data
    if d.image_size is not None:  # tiled already (a resumed run): whole images of that size
        return to_image_size(images, cfg)
    size = tuple(images.images.shape[-2:])
    side = tile_side(d, size)  # type: ignore[arg-type]
    if side is None:
        if shrink:  # decoded at full resolution for nothing: the size the untiled rule gives
            target = tuple(d.size) if d.size is not None else capped_size(size, d.max_side)  # type: ignore[arg-type]
            if target != size:
                images = replace(images, images=torch.stack([fit_size(x, target, d.resize) for x in images.images]))
        return images
    capped = capped_size(size, MAX_IMAGE_SIDE)  # type: ignore[arg-type]
    if capped != size:
        log.info("images of %dx%d are shrunk to %dx%d for tiling (data.tile: at most %d pixels a side)",
                 size[0], size[1], capped[0], capped[1], MAX_IMAGE_SIDE)
        images = replace(images, images=torch.stack([fit_size(x, capped, d.resize) for x in images.images]))
    d.image_size = capped
    d.size = (min(side, capped[0]), min(side, capped[1]))
    validate(cfg)
    n = len(tile_boxes(capped, d.size))
    log.info("tiling: %d images of %dx%d, each scored in %d overlapping tiles of %dx%d at its own resolution "
             "(data.tile; --set data.tile=off shrinks them to %d pixels instead)", len(images), capped[0], capped[1],
             n, d.size[0], d.size[1], d.max_side)
    return images


def sample_tiles(images: ImageSet, cfg: Config, most: int, seed: int) -> ImageSet:
    """Tiles of whole images, at most ``most`` of them: a seeded uniform sample of all of them
    (in image order) where there are more, cut one by one so that the tiles not drawn never
    exist. Paths name the image and the tile's box (``PATH@top,left``)."""
    th, tw = tile = tuple(cfg.data.size)  # type: ignore[misc]
    x = images.images
    boxes = tile_boxes(tuple(x.shape[-2:]), tile)  # type: ignore[arg-type]
    if x.shape[-2] < th or x.shape[-1] < tw:  # a side shorter than the tile: padded as cut() pads it
        x = torch.nn.functional.pad(x.float(), (0, max(0, tw - x.shape[-1]), 0, max(0, th - x.shape[-2])),
                                    mode="replicate").to(x.dtype)
    total = len(images) * len(boxes)
    pick = torch.arange(total)
    if total > most:
        pick = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:most].sort().values
    tiles, names = [], []
    for k in pick.tolist():
        i, (t, l) = k // len(boxes), boxes[k % len(boxes)]
        tiles.append(x[i, :, t:t + th, l:l + tw])
        names.append(f"{images.paths[i] if images.paths else i}@{t},{l}")
    return ImageSet(images=torch.stack(tiles).contiguous(), max_value=images.max_value, paths=names,
                    skipped=list(images.skipped))


def calibration_images(calib: ImageSet, cfg: Config, seed: int) -> ImageSet:
    """The whole calibration images a tiled fit sets its threshold on: all of them where they
    hold at most :data:`MAX_CALIB_TILES` tiles, else a seeded sample of as many as do (at
    least :data:`MIN_CALIB_IMAGES`), said in one log line."""
    per_image = len(tile_boxes(tuple(calib.images.shape[-2:]), tuple(cfg.data.size)))  # type: ignore[arg-type]
    keep = max(MIN_CALIB_IMAGES, MAX_CALIB_TILES // per_image)
    if len(calib) <= keep:
        return calib
    pick = torch.randperm(len(calib), generator=torch.Generator().manual_seed(seed))[:keep].sort().values
    log.info("calibration: %d of %d held-out images (%d tiles each; at most %d tiles in all keep a fit's time bounded)",
             keep, len(calib), per_image, MAX_CALIB_TILES)
    return calib.subset(pick)
