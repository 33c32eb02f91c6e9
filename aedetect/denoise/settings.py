"""The tiling and noise-level options of ``aedetect denoise`` and their checks, without PyTorch (the CLI's
defaults and its usage errors come from here, so ``--help`` and a bad option cost no torch)."""

from __future__ import annotations

import math

from aedetect.core.checks import check_whole_number

DEFAULT_MAX_PIXELS = 512 * 512
DEFAULT_OVERLAP = 32


def check_tiling(max_tile_pixels: object, overlap: object) -> None:
    """``max_tile_pixels`` a whole number >= 1 (a tile of a handful of pixels is slow but
    correct), ``overlap`` a whole number >= 0; else one ConfigError naming the option."""
    check_whole_number("--max-tile-pixels", max_tile_pixels, 1)
    check_whole_number("--overlap", overlap, 0)
    # Each tile (and an image smaller than one) is reflect-padded by the overlap on every side:
    # --overlap 20000 made a 16x16 image a 40016 x 40016 tensor (6.4 GB). At most the tile's side.
    high = max(DEFAULT_OVERLAP, math.isqrt(max_tile_pixels))  # type: ignore[arg-type]
    if overlap > high:  # type: ignore[operator]
        from aedetect.errors import ConfigError

        raise ConfigError(f"--overlap: {overlap} is more than {high} pixels, the side of a tile of "
                          f"--max-tile-pixels {max_tile_pixels} (it pads every tile on each side)")


def parse_sigma(text: object) -> float | str:
    """``--sigma``: 'auto' or a level on the 0..255 scale, 0 to 255; else one ConfigError."""
    from aedetect.errors import ConfigError

    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"--sigma: {text!r} is neither 'auto' nor a number (0..255 scale)") from None
    if not 0 <= value <= 255:
        raise ConfigError(f"--sigma: {value:g} is outside 0..255 (the noise sigma on the 0..255 scale)")
    return value


def check_ensemble(n: object) -> None:
    """``--ensemble``: 1, 2, 4 or 8 flips/turns averaged; else one ConfigError."""
    from aedetect.errors import ConfigError

    if isinstance(n, bool) or n not in (1, 2, 4, 8):
        raise ConfigError(f"--ensemble: {n!r} is not 1, 2, 4 or 8 (flips/turns averaged)")
