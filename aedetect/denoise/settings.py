"""The tiling options of ``aedetect denoise`` and their checks, without PyTorch (the CLI's
defaults and its usage errors come from here, so ``--help`` and a bad option cost no torch)."""

from __future__ import annotations

from aedetect.core.checks import check_whole_number

DEFAULT_MAX_PIXELS = 512 * 512
DEFAULT_OVERLAP = 32


def check_tiling(max_tile_pixels: object, overlap: object) -> None:
    """``max_tile_pixels`` a whole number >= 1 (a tile of a handful of pixels is slow but
    correct), ``overlap`` a whole number >= 0; else one ConfigError naming the option."""
    check_whole_number("--max-tile-pixels", max_tile_pixels, 1)
    check_whole_number("--overlap", overlap, 0)
