"""Reading and writing image files with their bit depth, channels and alpha intact.

Pillow reads PNG, JPEG, BMP, WebP and 8/16-bit grayscale TIFF; tifffile reads every TIFF
(16-bit RGB included, which Pillow cannot represent). 16-bit PNGs with more than one channel
(grey + alpha, RGB, RGBA) go through pypng: Pillow would silently read and write them as
8-bit, losing half of every sample. Arrays are always (H, W, C) with C in {1, 2, 3, 4} and
dtype uint8 or uint16, so no caller has to guess the layout.

Two kinds of file are refused before any pixel is decoded (an :class:`ImageReadError`, which
the callers turn into one warning and a skip):

* more pixels than one limit, read from the header (TIFF tags, PNG IHDR, Pillow's header
  parse): ``PIL.Image.MAX_IMAGE_PIXELS`` (89,478,485 by default), which the environment
  variable ``AEDETECT_MAX_IMAGE_PIXELS`` sets (``0``: no limit). A 900 KB file can declare
  30000 x 30000 pixels and take gigabytes to decode;
* more than one image in a file: a multi-page TIFF (a 3- or 4-page stack would otherwise be
  read as RGB / RGBA, pages becoming channels), an animated PNG or WebP (only the first frame
  would be kept). Reduced-resolution TIFF pages (thumbnails, pyramid levels) do not count.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aedetect.errors import ConfigError
from aedetect.util.fsutil import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PIXEL_LIMIT_ENV = "AEDETECT_MAX_IMAGE_PIXELS"
# Pillow warns (once per process) between its limit and twice it; read_image refuses those
# files itself, with the file's name, so the anonymous warning would only repeat it.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# tifffile logs its own complaints about malformed tags (as errors, e.g. for a patched size); the caller's one
# warning per skipped file already says what is wrong with it.
logging.getLogger("tifffile").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class ImageInfo:
    """What a writer needs to give an output the same format as its input."""

    format: str  # "PNG", "JPEG", "TIFF", "BMP", "WEBP"
    dtype: str  # "uint8" | "uint16"
    channels: int  # 1, 2 (gray+alpha), 3, 4 (RGBA)
    # What a photo carries beside its pixels, written back unchanged (read through Pillow):
    # the EXIF block (its orientation tag tells a viewer how to turn the stored pixels, which
    # are denoised as stored, so without it the output shows rotated), the ICC colour profile,
    # the resolution, and for WebP whether the file is lossless (re-saving it lossy loses data).
    exif: bytes | None = None
    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None
    lossless: bool = False

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    @property
    def max_value(self) -> int:
        return 65535 if self.dtype == "uint16" else 255


class ImageReadError(Exception):
    """A file that cannot be decoded; the message says what is wrong with it."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _format_of(path: Path) -> str:
    ext = path.suffix.lower()
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
            ".tiff": "TIFF", ".webp": "WEBP"}.get(ext, "PNG")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def max_image_pixels() -> int | None:
    """The pixel limit (None: none): ``AEDETECT_MAX_IMAGE_PIXELS`` if set (it then sets Pillow's
    own check to the same value), else ``PIL.Image.MAX_IMAGE_PIXELS``."""
    env = os.environ.get(PIXEL_LIMIT_ENV, "").strip()
    if env:
        try:
            limit = int(env.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{PIXEL_LIMIT_ENV}={env!r}: not a whole number of pixels (0: no limit)") from None
        Image.MAX_IMAGE_PIXELS = limit if limit > 0 else None
    return Image.MAX_IMAGE_PIXELS


def check_pixels(width: int, height: int) -> None:
    """Refuse, before decoding, an image that declares more pixels than the limit."""
    limit = max_image_pixels()
    if limit is not None and width * height > limit:
        raise ImageReadError(f"declares {width}x{height} = {width * height:,} pixels, over the limit of "
                             f"{limit:,} ({PIXEL_LIMIT_ENV}); not decoded")


def _png_header(path: Path) -> tuple[int, int, int, int, bool] | None:
    """(width, height, bit depth, colour type, animated) from a PNG's chunks before the image
    data, or None for a file that does not start like a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
        if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
            return None
        animated = False
        f.seek(8)
        for _ in range(64):  # acTL, if any, comes before the first IDAT
            chunk = f.read(8)
            if len(chunk) < 8 or chunk[4:8] in (b"IDAT", b"IEND"):
                break
            animated |= chunk[4:8] == b"acTL"
            f.seek(int.from_bytes(chunk[:4], "big") + 4, 1)
    return (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24], head[25], animated)


def is_png16_multichannel(path: Path) -> bool:
    """True for a PNG whose header says 16 bits per sample and colour type grey + alpha (4),
    RGB (2) or RGBA (6): the PNGs Pillow can only represent as 8-bit."""
    h = _png_header(path)
    return h is not None and h[2] == 16 and h[3] in (2, 4, 6)


def _read_png16(path: Path) -> np.ndarray:
    """(H, W, C) uint16 samples of a 16-bit multi-channel PNG, every bit kept (pypng)."""
    import png

    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    return arr.reshape(h, w, info["planes"])


def _write_png16(path: Path, a: np.ndarray) -> None:
    """Write (H, W, C) uint16, C in {2, 3, 4}, as a 16-bit PNG (pypng; Pillow cannot)."""
    import png

    h, w, c = a.shape
    writer = png.Writer(w, h, greyscale=c == 2, alpha=c in (2, 4), bitdepth=16)
    with open(path, "wb") as f:
        writer.write(f, np.ascontiguousarray(a).reshape(h, w * c))


def _normalise(arr: np.ndarray, path: Path) -> np.ndarray:
    """Bring an array to (H, W, C) uint8/uint16, or refuse it with a reason."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"unsupported array shape {arr.shape} (expected HxW or HxWxC, C<=4)")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype in (np.int32, np.uint32, np.int16):
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageReadError(f"pixel values outside 0..65535 ({arr.dtype})")
        arr = arr.astype(np.uint16)
    elif arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"unsupported pixel type {arr.dtype} (8- or 16-bit integers only)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError("empty image")
    return np.ascontiguousarray(arr)


def _read_tiff(p: Path) -> np.ndarray:
    """The one image of a TIFF, its size checked from the tags before decoding; a stack of
    full-resolution pages is refused (see the module docstring)."""
    import tifffile

    with tifffile.TiffFile(p) as tf:
        n_pages = len(tf.pages)
        if n_pages > 1:
            full = sum(1 for page in tf.pages if not (getattr(page, "subfiletype", 0) & 1))
            if full > 1:
                raise ImageReadError(f"a multi-page TIFF ({full} pages): a stack is not read as one image "
                                     "or as colour channels (save each page as its own file)")
        page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
        check_pixels(int(page.imagewidth), int(page.imagelength))
        arr = tf.asarray()
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) TIFF
    return arr


def webp_is_lossless(path: Path) -> bool:
    """True if the WebP file's image chunk is ``VP8L`` (lossless), read from the RIFF chunk
    headers (Pillow does not say)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            return False
        for _ in range(64):  # VP8X, ICCP, ANIM, ALPH, ... come before the image chunk
            chunk = fh.read(8)
            if len(chunk) < 8:
                return False
            kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind in (b"VP8 ", b"VP8L"):
                return kind == b"VP8L"
            if kind == b"ANMF":
                fh.seek(16, 1)  # an animation frame's header, then its own image chunks
                continue
            fh.seek(size + (size & 1), 1)
    return False


def _photo_metadata(im: Image.Image, p: Path) -> dict[str, object]:
    """EXIF, ICC profile, resolution and WebP losslessness of an open Pillow image (see
    :class:`ImageInfo`); a malformed block is dropped, never an error."""
    meta: dict[str, object] = {}
    exif = im.info.get("exif")
    if isinstance(exif, bytes) and exif:
        meta["exif"] = exif
    icc = im.info.get("icc_profile")
    if isinstance(icc, bytes) and icc:
        meta["icc_profile"] = icc
    dpi = im.info.get("dpi")
    try:
        if dpi is not None and len(dpi) == 2 and all(float(v) > 0 for v in dpi):
            meta["dpi"] = (float(dpi[0]), float(dpi[1]))
    except (TypeError, ValueError):
        pass
    if im.format == "WEBP":
        meta["lossless"] = webp_is_lossless(p)
    return meta


def read_image(path: str | Path) -> tuple[np.ndarray, ImageInfo]:
    """Decode one file fully (truncation is caught here, not later in training)."""
    p = Path(path)
    meta: dict[str, object] = {}
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            arr = _read_tiff(p)
        elif p.suffix.lower() == ".png" and is_png16_multichannel(p):
            w, h, _, _, animated = _png_header(p)  # type: ignore[misc]
            check_pixels(w, h)  # pypng has no limit of its own
            if animated:
                raise ImageReadError("an animated PNG: only single images are read (save the frames as files)")
            arr = _read_png16(p)
        else:
            if p.suffix.lower() == ".png" and (png := _png_header(p)) is not None:
                check_pixels(png[0], png[1])  # before Pillow's own check, which names no file
            with Image.open(p) as im:
                check_pixels(*im.size)
                frames = getattr(im, "n_frames", 1)
                if im.format in ("PNG", "WEBP") and frames > 1:  # not JPEG: a camera's MPO is one photo
                    raise ImageReadError(f"an animated {im.format} ({frames} frames): only single images "
                                         "are read (save the frames as files)")
                im.load()
                meta = _photo_metadata(im, p)
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.array(im)
                elif im.mode in ("1", "L", "LA", "RGB", "RGBA"):
                    arr = np.array(im)
                elif im.mode == "P":
                    arr = np.array(im.convert("RGBA" if "transparency" in im.info else "RGB"))
                else:
                    arr = np.array(im.convert("RGB"))
    except Image.DecompressionBombError as e:  # Pillow's own check, at twice its limit
        raise ImageReadError(f"over the pixel limit ({PIXEL_LIMIT_ENV}; {e})") from None
    except (ImageReadError, ConfigError):
        raise
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except Exception as e:  # Pillow/tifffile raise many types for corrupt data
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImageReadError(f"cannot decode ({msg})") from None
    arr = _normalise(arr, p)
    return arr, ImageInfo(format=_format_of(p), dtype=str(arr.dtype), channels=arr.shape[2], **meta)  # type: ignore[arg-type]


def write_image_atomic(path: str | Path, arr: np.ndarray, info: ImageInfo, quality: int = 95,
                       *, overwrite: bool = True) -> None:
    """Write to a temporary file beside ``path``, decode it back, and only then rename it into place.

    A crash, a full disk or a writer that stops part-way never leaves an image under the final
    name (see :func:`~aedetect.util.fsutil.atomic_path`; ``overwrite=False`` refuses an
    existing one), and the re-read catches a file the writer truncated without an error, so
    an output that exists is always a complete image.
    """
    with atomic_path(path, overwrite=overwrite) as tmp:
        _write(tmp, arr, info, quality)
        _check_decodes(tmp, arr.shape[:2])


def _check_decodes(tmp: str, size: tuple[int, ...]) -> None:
    """Raise OSError unless ``tmp`` decodes fully to an image of ``size`` (H, W)."""
    import errno

    try:
        back, _ = read_image(tmp)
    except ImageReadError as e:
        raise OSError(errno.EIO, f"the written file does not decode ({e})") from None
    if back.shape[:2] != tuple(size):
        raise OSError(errno.EIO, f"the written file decodes to {back.shape[:2]}, not {tuple(size)}")


def _write(tmp: str, arr: np.ndarray, info: ImageInfo, quality: int) -> None:
    """Encode ``arr`` in ``info.format`` (the input's) to ``tmp``."""
    a = arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
    if info.format == "TIFF":
        import tifffile

        tifffile.imwrite(tmp, a, photometric="rgb" if a.ndim == 3 and a.shape[2] >= 3 else None)
    elif a.dtype == np.uint16 and a.ndim == 3 and info.format == "PNG":
        _write_png16(tmp, a)
    else:
        if a.dtype == np.uint16 and a.ndim == 2:
            im = Image.fromarray(a)  # Pillow picks mode I;16
        elif a.dtype == np.uint16:
            raise ImageReadError(f"{info.format} cannot hold 16-bit colour; use TIFF or PNG")
        else:
            im = Image.fromarray(a)
        im.save(tmp, format=info.format, **_save_options(info, quality))


def _save_options(info: ImageInfo, quality: int) -> dict[str, object]:
    """Pillow's save options that keep what the input carried: quality for a lossy format
    (a lossless WebP stays lossless), EXIF and ICC where the format holds them, the DPI."""
    opts: dict[str, object] = {}
    if info.format == "WEBP" and info.lossless:
        opts["lossless"] = True
    elif info.format in ("JPEG", "WEBP"):
        opts["quality"] = quality
    if info.format in ("JPEG", "PNG", "WEBP"):
        if info.exif:
            opts["exif"] = info.exif
        if info.icc_profile:
            opts["icc_profile"] = info.icc_profile
    if info.format in ("JPEG", "PNG") and info.dpi:
        opts["dpi"] = info.dpi
    return opts
