"""Pictures people would rather look at than read: loss curves and reconstruction grids.

matplotlib runs on the Agg backend (no display needed); every PNG is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from aedetect.util.fsutil import atomic_path


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save and close a matplotlib figure atomically."""
    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def save_loss_curve(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Train and validation loss per epoch (log scale), the best epoch marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", ms=3, label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], "o-", ms=3, label="validation")
    best = min(history, key=lambda h: h["val_loss"])
    ax.axvline(best["epoch"], color="grey", ls=":", lw=1, label=f"best (epoch {best['epoch']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if all(h["train_loss"] > 0 and h["val_loss"] > 0 for h in history):
        ax.set_yscale("log")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def upscale_factor(h: int, w: int, min_side: int = 64) -> int:
    """Integer factor that brings the shorter side to at least ``min_side`` pixels."""
    return max(1, -(-min_side // max(1, min(h, w))))


def upscale_for_display(x: Tensor, min_side: int = 64) -> Tensor:
    """Nearest-neighbour upscaling so 8x8 or 28x28 images are visible in a grid."""
    f = upscale_factor(*x.shape[-2:], min_side=min_side)
    return F.interpolate(x.float(), scale_factor=f, mode="nearest") if f > 1 else x


def make_grid(tiles: Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> Tensor:
    """torchvision.utils.make_grid's layout (tests/test_startup.py holds them equal), here so
    training needs no torchvision: a CPU-only torch beside PyPI's torchvision cannot even
    import torchvision (its compiled ops do not load; docs/install.md), and only the
    datasets by name need it. (N, C, h, w) -> (3 or C, H, W); one tile is returned as is."""
    if tiles.dim() == 4 and tiles.size(1) == 1:
        tiles = torch.cat((tiles, tiles, tiles), 1)
    if tiles.size(0) == 1:
        return tiles.squeeze(0)
    n, c, h, w = tiles.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = tiles.new_full((c, (h + padding) * rows + padding, (w + padding) * cols + padding), pad_value)
    for k in range(n):
        y, x = divmod(k, cols)
        grid[:, y * (h + padding) + padding: (y + 1) * (h + padding), x * (w + padding) + padding: (x + 1) * (w + padding)] = tiles[k]
    return grid


def save_tile_grid(tiles: Tensor, path: str | Path, nrow: int, min_side: int = 64) -> Path:
    """Tiles (N, C, h, w) in [0, 1], upscaled to at least ``min_side``, as one PNG grid
    (torchvision's make_grid layout: padding 2, white), written atomically."""
    from PIL import Image

    grid = make_grid(upscale_for_display(tiles.float(), min_side).clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    # torchvision.utils.save_image's rounding
    arr = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(tmp, format="PNG")
    return Path(path)


def save_recon_grid(rows: list[Tensor], path: str | Path, min_side: int = 64) -> Path:
    """One row per tensor (e.g. inputs over reconstructions), values in [0, 1]."""
    return save_tile_grid(torch.cat([r.float() for r in rows]), path, nrow=rows[0].shape[0], min_side=min_side)
