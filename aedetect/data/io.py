"""Reading and writing image files with their bit depth, channels and alpha intact.

Pillow reads PNG, JPEG, BMP, WebP and 8/16-bit grayscale TIFF; tifffile reads every TIFF
(16-bit RGB included, which Pillow cannot represent). 16-bit PNGs with more than one channel
(grey + alpha, RGB, RGBA) go through pypng: Pillow would silently read and write them as
8-bit, losing half of every sample. Arrays are always (H, W, C) with C in {1, 2, 3, 4} and
dtype uint8 or uint16, so no caller has to guess the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aedetect.util.fsutil import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageInfo:
    """What a writer needs to give an output the same format as its input."""

    format: str  # "PNG", "JPEG", "TIFF", "BMP", "WEBP"
    dtype: str  # "uint8" | "uint16"
    channels: int  # 1, 2 (gray+alpha), 3, 4 (RGBA)

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


def is_png16_multichannel(path: Path) -> bool:
    """True for a PNG whose header says 16 bits per sample and colour type grey + alpha (4),
    RGB (2) or RGBA (6): the PNGs Pillow can only represent as 8-bit."""
    with open(path, "rb") as f:
        head = f.read(26)
    return len(head) == 26 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" \
        and head[24] == 16 and head[25] in (2, 4, 6)


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


def read_image(path: str | Path) -> tuple[np.ndarray, ImageInfo]:
    """Decode one file fully (truncation is caught here, not later in training)."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(p)
            if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 2, 3, 4):
                arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) TIFF
        elif p.suffix.lower() == ".png" and is_png16_multichannel(p):
            arr = _read_png16(p)
        else:
            with Image.open(p) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.array(im)
                elif im.mode in ("1", "L", "LA", "RGB", "RGBA"):
                    arr = np.array(im)
                elif im.mode == "P":
                    arr = np.array(im.convert("RGBA" if "transparency" in im.info else "RGB"))
                else:
                    arr = np.array(im.convert("RGB"))
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except Exception as e:  # Pillow/tifffile raise many types for corrupt data
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImageReadError(f"cannot decode ({msg})") from None
    arr = _normalise(arr, p)
    return arr, ImageInfo(format=_format_of(p), dtype=str(arr.dtype), channels=arr.shape[2])


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
        kwargs = {"quality": quality} if info.format in ("JPEG", "WEBP") else {}
        im.save(tmp, format=info.format, **kwargs)
