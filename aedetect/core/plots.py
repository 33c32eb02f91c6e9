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


def save_tile_grid(tiles: Tensor, path: str | Path, nrow: int, min_side: int = 64) -> Path:
    """Tiles (N, C, h, w) in [0, 1], upscaled to at least ``min_side``, as one PNG grid
    (torchvision's make_grid layout: padding 2, white), written atomically."""
    from torchvision.utils import make_grid, save_image

    grid = make_grid(upscale_for_display(tiles.float(), min_side).clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return Path(path)


def save_recon_grid(rows: list[Tensor], path: str | Path, min_side: int = 64) -> Path:
    """One row per tensor (e.g. inputs over reconstructions), values in [0, 1]."""
    return save_tile_grid(torch.cat([r.float() for r in rows]), path, nrow=rows[0].shape[0], min_side=min_side)
