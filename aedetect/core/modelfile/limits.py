"""How large a model a model file may describe: checked on its config before any layer is
built, even on the ``meta`` device.

The record checksum (``record_sha256``) stops an edited file, but anyone can recompute it: a
24 KB file with ``widths [1] * 24`` asked scoring for 1.1e15 bytes (24 levels pad every image
to a multiple of 2^24 pixels), ``data.size [8000, 8000]`` took 5.1 GB to score one 16x16
image, and ``convs_per_level 30000`` spent 47 s and 2.3 GB building the expected shapes. So a
loaded config must stay within limits far above every preset and recipe (the largest shipped
one: 4 levels, 2 convolutions per level, widths up to 128), and within a memory budget for
the activations of one image at its input size. Torch-free: ``aedetect info`` uses it too.
"""

from __future__ import annotations

import math
from pathlib import Path

from aedetect.core.config import Config
from aedetect.errors import ModelFileError

MAX_LEVELS = 10  # 2^10 = 1024: the multiple every side is padded to
MAX_WIDTH = 8192
MAX_CONVS_PER_LEVEL = 32
MAX_KERNEL = 31
MAX_DEPTH = 256  # a plain DnCNN-style stack (17 by default)
MAX_DENSE = 1 << 20  # latent_dim, each mlp_hidden, latent_channels
MAX_SIDE = 1 << 15
MAX_CHANNELS = 4
# The outputs of every layer for one image at the model's input size, as float32: 8 GiB would
# be a 4096 x 4096 image through the largest preset; the 8000 x 8000 small model is 14 GiB.
MAX_ACTIVATION_BYTES = 4 << 30


def _whole(path: Path, key: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ModelFileError(f"{path}: {key} is {value!r}, outside what a model file may hold "
                             f"(a whole number in [{lo}, {hi}]; file damaged or crafted)")
    return value


def activation_bytes(cfg: Config) -> int:
    """float32 bytes of every layer output for one image at the model's input size (``data.size``,
    else ``model.input_size``, else the smallest padded image: one multiple of the stride)."""
    m = cfg.model
    size = cfg.data.size or m.input_size or (1, 1)
    s = max(m.total_stride, 1)
    h, w = (math.ceil(int(v) / s) * s for v in size)
    pixels = h * w
    io = 2 * m.input_channels * pixels  # the input and the reconstruction
    if m.plain:
        return 4 * (io + m.depth * max(m.widths) * pixels)
    if m.arch == "mlp":
        return 4 * (io + sum(m.mlp_hidden) + m.latent_dim)
    enc = sum(m.convs_per_level * wl * (pixels >> (2 * lvl)) for lvl, wl in enumerate(m.widths))
    dec = sum(m.convs_per_level * wl * (pixels >> (2 * (m.levels - 1 - lvl)))
              for lvl, wl in enumerate(m.resolved_decoder_widths()))
    return 4 * (io + enc + dec)


def check_model_limits(path: Path, cfg: Config) -> None:
    """Refuse, in one line naming the file and the key, a config larger than any model aedetect
    trains: levels, widths, convolutions, kernel, depth, dense sizes, image size, and the
    activation memory of one image (:func:`activation_bytes`)."""
    m = cfg.model
    _whole(path, "model.widths (levels)", len(m.widths), 1, MAX_LEVELS)
    for key, seq in (("model.widths", m.widths), ("model.decoder_widths", m.decoder_widths or ())):
        for v in seq:
            _whole(path, key, v, 1, MAX_WIDTH)
    _whole(path, "model.convs_per_level", m.convs_per_level, 1, MAX_CONVS_PER_LEVEL)
    _whole(path, "model.kernel_size", m.kernel_size, 1, MAX_KERNEL)
    _whole(path, "model.depth", m.depth, 1, MAX_DEPTH)
    _whole(path, "model.in_channels", m.in_channels, 1, MAX_CHANNELS)
    _whole(path, "model.latent_dim", m.latent_dim, 1, MAX_DENSE)
    if m.latent_channels is not None:
        _whole(path, "model.latent_channels", m.latent_channels, 1, MAX_DENSE)
    for v in m.mlp_hidden:
        _whole(path, "model.mlp_hidden", v, 1, MAX_DENSE)
    for key, size in (("data.size", cfg.data.size), ("model.input_size", m.input_size),
                      ("data.image_size", cfg.data.image_size)):
        for v in size or ():
            _whole(path, key, v, 1, MAX_SIDE)
    need = activation_bytes(cfg)
    if need > MAX_ACTIVATION_BYTES:
        raise ModelFileError(f"{path}: the model would need about {need / 2**30:.3g} GiB for one image at its "
                             f"input size {list(cfg.data.size or m.input_size or [])} (at most "
                             f"{MAX_ACTIVATION_BYTES >> 30} GiB; file damaged or crafted)")
