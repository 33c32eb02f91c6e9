"""Bad image files, made small and on purpose: what bench/hostile.py feeds every command and
what the tests of issue 11 are built from (they load this file by path, as the legacy-model
test loads its maker). Each maker writes one file from a real photograph (scikit-image's
camera) and returns its path."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def camera(h: int = 32, w: int = 32, top: int = 120, left: int = 220) -> np.ndarray:
    """A uint8 crop of scikit-image's camera photograph (the man and his tripod)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.camera()[top:top + h, left:left + w])


def multipage_tiff(path: Path, pages: int) -> Path:
    """``pages`` grayscale pages in one TIFF (the stack that a reader can take for RGB/RGBA)."""
    import tifffile

    stack = np.stack([camera(top=100 + 20 * i) for i in range(pages)])
    tifffile.imwrite(path, stack, photometric="minisblack")
    return path


def animated(path: Path, frames: int = 3) -> Path:
    """An animated PNG (APNG) or WebP, by ``path``'s extension."""
    ims = [Image.fromarray(camera(left=200 + 10 * i)) for i in range(frames)]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=100, loop=0)
    return path


def huge_tiff(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A TIFF of a few hundred bytes whose tags declare ``width`` x ``height`` pixels: a 16x16
    image written by tifffile, its ImageWidth/ImageLength tags then patched."""
    import tifffile

    tifffile.imwrite(path, camera(16, 16), photometric="minisblack")
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", raw, 4)[0]
    for i in range(struct.unpack_from("<H", raw, ifd)[0]):
        at = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", raw, at)
        if tag in (256, 257):  # ImageWidth, ImageLength
            fmt = "<H" if kind == 3 else "<I"
            struct.pack_into(fmt, raw, at + 8, width if tag == 256 else height)
    path.write_bytes(bytes(raw))
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, width: int = 30000, height: int = 30000, bit_depth: int = 16, colour_type: int = 2) -> Path:
    """A valid-looking PNG header declaring ``width`` x ``height`` (default 16-bit RGB, the kind
    that goes through pypng) with the image data of a few rows only."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" + bytes(width * channels * bit_depth // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(row * 4, 9))
                     + _chunk(b"IEND", b""))
    return path


def latin1_named_png(folder: Path, stem: bytes = b"caf\xe9", image: np.ndarray | None = None) -> Path:
    """A PNG (``image``, default a camera crop) whose file name is Latin-1, not valid UTF-8
    (written through a bytes path); the returned Path holds the name as Python decodes it (with
    a surrogate escape)."""
    name = os.path.join(os.fsencode(folder), stem + b".png")
    with open(name, "wb") as fh:
        Image.fromarray(camera() if image is None else image).save(fh, format="PNG")
    return Path(os.fsdecode(name))


# ---- damaged and crafted model files ---------------------------------------------------------
def _header_span(raw: bytes) -> tuple[int, int]:
    n = struct.unpack("<Q", raw[:8])[0]
    return 8, 8 + n


def flip_weight_byte(src: Path, dst: Path) -> Path:
    """One bit pattern changed in the last tensor byte (the data, not the header)."""
    raw = bytearray(src.read_bytes())
    raw[-3] ^= 0xFF
    dst.write_bytes(bytes(raw))
    return dst


def edit_header_text(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    """Replace the first ``old`` in the JSON header by ``new`` of the same length, byte for byte:
    what editing the file in a hex editor does (the header stays valid JSON)."""
    assert len(old) == len(new)
    raw = bytearray(src.read_bytes())
    start, end = _header_span(bytes(raw))
    at = raw.find(old, start, end)
    if at < 0:
        raise ValueError(f"{old!r} not in the header of {src}")
    raw[at:at + len(old)] = new
    dst.write_bytes(bytes(raw))
    return dst


def edit_threshold_digit(src: Path, dst: Path) -> Path:
    """The threshold's first digit doubled (2.46 -> 4.46) or halved (from 5 up), in place."""
    import json
    import re

    raw = src.read_bytes()
    start, end = _header_span(raw)
    m = re.search(rb'\\"threshold\\": (\d)', raw[start:end])
    if m is None:
        raise ValueError(f"no threshold in the header of {src}")
    d = int(m.group(1))
    out = bytearray(raw)
    pos = start + m.start(1)
    out[pos:pos + 1] = str(d * 2 if 0 < d <= 4 else max(d // 2, 1)).encode()
    json.loads(bytes(out[start:end]))  # still valid JSON
    dst.write_bytes(bytes(out))
    return dst


def rewrite_meta(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """Re-serialise the header with ``edit(meta)`` applied to the aedetect record."""
    import json

    raw = src.read_bytes()
    start, end = _header_span(raw)
    header = json.loads(raw[start:end])
    meta = json.loads(header["__metadata__"]["aedetect"])
    edit(meta)
    header["__metadata__"]["aedetect"] = json.dumps(meta)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    dst.write_bytes(struct.pack("<Q", len(h)) + h + raw[end:])
    return dst


def truncate(src: Path, dst: Path, keep: int) -> Path:
    """The first ``keep`` bytes (negative: all but the last -keep)."""
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


# ---- issue 27: crafted model files (checksum recomputed), names, photos --------------------
def craft_meta(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """:func:`rewrite_meta` with the record checksum recomputed after ``edit``: what anyone who
    reads aedetect's source can do, so only limits and field checks stand in the way."""
    from aedetect.core.modelfile.header import RECORD_KEY, record_digest

    def both(meta):  # type: ignore[no-untyped-def]
        edit(meta)
        meta[RECORD_KEY] = record_digest(meta)
    return rewrite_meta(src, dst, both)


def float16_bank(rows: int, cols: int, nbytes: int | None = None) -> dict:  # type: ignore[type-arg]
    """A latent or feature bank record; ``nbytes`` other than rows x cols x 2 makes it misshapen."""
    import base64

    n = rows * cols * 2 if nbytes is None else nbytes
    return {"shape": [rows, cols], "float16_base64": base64.b64encode(bytes(n)).decode("ascii")}


COLLIDING_NAMES = ("n00 x.png", "n00_x.png", "x (1).png", "x(1).png")
LONG_NAME = "p" * 236 + ".png"  # 240 bytes: legal; its temporary sibling was not
FORMULA_NAMES = ('=HYPERLINK("http:x","click").png', "+1+2.png", "-cmd.png", "@SUM(A1).png")
FORMULA_KIND = "=cmd|' -c calc'!A0"


def exif_photo(path: Path, orientation: int = 6) -> Path:
    """An RGB camera crop with EXIF (orientation, make), an sRGB ICC profile and 300 DPI."""
    from PIL import ImageCms

    g = camera(32, 48)
    rgb = np.stack([g, g // 2 + 60, 255 - g], axis=2)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "hostile-bench"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    opts: dict = {"exif": exif.tobytes(), "icc_profile": icc}  # type: ignore[type-arg]
    if path.suffix.lower() != ".webp":
        opts["dpi"] = (300, 300)
    Image.fromarray(rgb).save(path, **opts)
    return path


def lossless_webp(path: Path) -> Path:
    g = camera(32, 48)
    Image.fromarray(np.stack([g, g, 255 - g], axis=2)).save(path, lossless=True)
    return path
