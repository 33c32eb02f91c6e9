"""Heat-map panels of ``aedetect score``: one labelled PNG per image, named after the image.

A panel is input | reconstruction | error map | overlay (red: predicted-mask contour, green:
ground truth where known), with each tile named above it and, below, the score against the
threshold and the error map's colour bar, so a panel read on its own (out of the report, in an
image viewer) still says what it shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aedetect.core.plots import upscale_factor
from aedetect.util.fsutil import atomic_path
from aedetect.util.names import RunNames, output_name, safe_part

TILE_TITLES = ("input", "reconstruction", "error map", "overlay")
_HEADER, _FOOTER, _SEP = 18, 34, 4


def _heat_rgb(m: np.ndarray, vmax: float) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(m / max(vmax, 1e-12), 0, 1))[..., :3] * 255).astype(np.uint8)


def _edge(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def heatmap_tiles(inp: np.ndarray, rec: np.ndarray, m: np.ndarray, pred: np.ndarray, vmax: float,
                  gt: np.ndarray | None = None, min_side: int = 128) -> np.ndarray:
    """The four tiles side by side (white gaps), nearest-neighbour upscaled to ``min_side``."""

    def rgb(x: np.ndarray) -> np.ndarray:  # (C, H, W) [0, 1] -> (H, W, 3) uint8
        x = np.repeat(x, 3, 0) if x.shape[0] == 1 else x
        return (np.clip(x.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)

    h, w = m.shape
    f = upscale_factor(h, w, min_side)

    def up(x: np.ndarray) -> np.ndarray:  # nearest-neighbour upscaling, so small images stay visible
        return np.repeat(np.repeat(x, f, 0), f, 1)

    a, b, heat = up(rgb(inp)), up(rgb(rec)), up(_heat_rgb(m, vmax))
    over = (0.55 * a + 0.45 * heat).astype(np.uint8)
    over[_edge(up(pred))] = (255, 40, 40)  # contours drawn after upscaling: thin at any size
    if gt is not None:
        over[_edge(up(gt > 0))] = (40, 255, 40)
    sep = np.full((h * f, _SEP, 3), 255, np.uint8)
    return np.concatenate([a, sep, b, sep, heat, sep, over], axis=1)


def heatmap_panel(inp: np.ndarray, rec: np.ndarray, m: np.ndarray, pred: np.ndarray, vmax: float,
                  gt: np.ndarray | None = None, *, score: float | None = None,
                  threshold: float | None = None, min_side: int = 128) -> np.ndarray:
    """:func:`heatmap_tiles` with the tile titles above and score, threshold and colour bar below."""
    from PIL import Image, ImageDraw, ImageFont

    tiles = heatmap_tiles(inp, rec, m, pred, vmax, gt, min_side)
    th, tw = tiles.shape[:2]
    tile_w = (tw - 3 * _SEP) // 4
    canvas = Image.new("RGB", (tw, th + _HEADER + _FOOTER), "white")
    canvas.paste(Image.fromarray(tiles), (0, _HEADER))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, title in enumerate(TILE_TITLES):
        x = k * (tile_w + _SEP) + tile_w // 2
        draw.text((x, _HEADER // 2), title, fill="black", font=font, anchor="mm")
    y = th + _HEADER + 4
    if score is not None and threshold is not None:
        verdict = "FLAGGED" if score > threshold else "not flagged"
        draw.text((2, y), f"score {score:.4g} {'>' if score > threshold else '<='} threshold {threshold:.4g}",
                  fill="black", font=font)
        draw.text((2, y + 14), verdict, fill=(200, 0, 0) if score > threshold else (0, 110, 0), font=font)
    bar_x0, bar_w = tile_w * 2 + 2 * _SEP, tile_w  # under the error map, which it explains
    ramp = _heat_rgb(np.tile(np.linspace(0, 1, bar_w, dtype=np.float32), (10, 1)), 1.0)
    canvas.paste(Image.fromarray(ramp), (bar_x0, y))
    draw.text((bar_x0, y + 12), "0", fill="black", font=font)
    draw.text((bar_x0 + bar_w, y + 12), f"{vmax:.3g}", fill="black", font=font, anchor="ra")
    return np.asarray(canvas)


def heatmap_name(path: str, root: str | Path | None, index: int, names: RunNames | None = None) -> str:
    """The panel's file name below ``heatmaps/``: the image's path relative to ``root`` with
    ``.png`` put on (``crack/000.png`` stays ``crack/000.png``, ``a/b.jpg`` becomes
    ``a/b.jpg.png``), so a user finds the image from its panel. An image outside ``root`` (or a
    dataset image by name, ``mnist:test:12``) gets ``NNNNN_<name>.png``. Made by
    :func:`aedetect.util.names.output_name` (bounded, a part that had to change carries its
    digest) and, with ``names`` (the run's), never one another image of the run holds."""
    name = None
    if root is not None:
        try:
            rel = Path(path).resolve().relative_to(Path(root).resolve())
        except (ValueError, OSError):
            rel = None
        if rel is not None and rel.parts:
            name = output_name(rel.parts, ".png")
    if name is None:
        stem = Path(path).stem if "/" in path or "." in path else path
        name = f"{index:05d}_" + safe_part(stem + ".png")
    return names.claim(name, str(path)) if names is not None else name


def write_heatmap(file: Path, panel: np.ndarray) -> None:
    """One panel as a PNG (written atomically, its folder made)."""
    from PIL import Image

    with atomic_path(file) as tmp:
        Image.fromarray(panel).save(tmp, format="PNG")
