"""Where images come from: folders (plain or MVTec AD layout), torchvision datasets by name,
and samples bundled with scikit-learn / scikit-image, all decoded into an :class:`ImageSet`.

A file that cannot be decoded is one warning line naming it, recorded in ``ImageSet.skipped``;
only "no usable image at all" is an error.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from aedetect.data.settings import DataConfig
from aedetect.data.imageset import ImageSet, stack_images
from aedetect.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image
from aedetect.data.scan import scan_images
from aedetect.errors import DataError
from aedetect.util.progress import progress_bar

log = logging.getLogger("aedetect")

TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
SAMPLE_DATASETS = ("digits",)
TEXTURES = ("brick", "grass", "gravel", "camera", "coins", "moon", "text", "page", "rough-wall")


def default_data_root() -> str:
    """Where torchvision datasets live: $AEDETECT_DATA_ROOT, else ~/.cache/aedetect/datasets."""
    return os.environ.get("AEDETECT_DATA_ROOT") or str(Path.home() / ".cache" / "aedetect" / "datasets")


def find_images(root: str | Path) -> list[Path]:
    """Every image file below ``root``, recursively, in a stable (sorted) order; what is
    skipped (broken symlinks, loops, unreadable folders, .gif ...) is warned about and
    counted (:func:`aedetect.data.scan.scan_images`)."""
    return scan_images(root).files


def is_mvtec(root: str | Path) -> bool:
    """MVTec AD layout: ``train/good`` (normal training images), ``test/<kind>``, ``ground_truth``."""
    return (Path(root) / "train" / "good").is_dir()


def decode_files(paths: list[Path], desc: str = "decoding",
                 limit: int | None = None) -> tuple[list[np.ndarray], list[Path], list[tuple[str, str]]]:
    """Decode files in threads (Pillow releases the GIL); bad files are logged and skipped.

    ``limit``: stop once this many images were read, in ``paths`` order (the first ``limit``
    readable files; the files after them are never opened), so ``--max-images 10`` on a
    folder of 100,000 decodes about 10 files, not 100,000.
    """
    arrays: list[np.ndarray] = []
    good: list[Path] = []
    skipped: list[tuple[str, str]] = []

    def _read(p: Path) -> tuple[Path, np.ndarray | None, str | None]:
        try:
            arr, _ = read_image(p)
            return p, arr, None
        except ImageReadError as e:
            return p, None, str(e)

    workers = min(8, (os.cpu_count() or 2))
    want = len(paths) if limit is None else min(limit, len(paths))
    with ThreadPoolExecutor(workers) as ex, progress_bar(desc, total=want, hide_below=200) as bar:
        start = 0
        while start < len(paths) and len(arrays) < want:
            chunk = paths[start:start + (want - len(arrays))]  # no more than the images still needed
            start += len(chunk)
            for p, arr, err in ex.map(_read, chunk):
                bar.advance()
                if arr is None:
                    log.warning("skipped %s: %s", p, err)
                    skipped.append((str(p), err or "unreadable"))
                else:
                    arrays.append(arr)
                    good.append(p)
    return arrays, good, skipped


def no_files_error(what: str) -> DataError:
    return DataError(f"{what}: no image files found (looked for {', '.join(e[1:] for e in IMAGE_EXTENSIONS)})")


def none_readable_error(what: str, n_files: int, first: tuple[str, str]) -> DataError:
    return DataError(f"{what}: none of the {n_files} image files could be read (first: {first[0]}: {first[1]})")


def decode_usable(paths: list[Path], what: str,
                  limit: int | None = None) -> tuple[list[np.ndarray], list[Path], list[tuple[str, str]]]:
    """:func:`decode_files`, but "no files" and "no readable file" are one clear DataError each
    (``what`` names the source): the only bad-input cases a run cannot go on from."""
    if not paths:
        raise no_files_error(what)
    arrays, good, skipped = decode_files(paths, limit=limit)
    if not arrays:
        raise none_readable_error(what, len(paths), skipped[0])
    return arrays, good, skipped


def load_files(paths: list[Path], cfg: DataConfig, what: str, limit: int | None = None) -> ImageSet:
    """Decode and stack a list of files (the first ``limit`` readable ones); ``what`` names
    the source in the error message."""
    arrays, good, skipped = decode_usable(paths, what, limit)
    images, max_value, _ = stack_images(arrays, cfg)
    return ImageSet(images=images, max_value=max_value, paths=[str(p) for p in good], skipped=skipped)


def load_folder(root: str | Path, cfg: DataConfig, limit: int | None = None) -> ImageSet:
    """Training images of a folder: ``train/good`` of an MVTec AD layout, else every image below it."""
    r = Path(root)
    if not r.exists():
        raise DataError(f"{r}: no such file or folder")
    src = r / "train" / "good" if is_mvtec(r) else r
    return load_files(find_images(src), cfg, str(src), limit)


def load_torchvision(name: str, cfg: DataConfig, *, train: bool, normal_class: int | None,
                     data_root: str | None = None, only_normal: bool = True) -> ImageSet:
    """MNIST / Fashion-MNIST / CIFAR-10 from ``data_root``; downloads only if the files are missing.

    With ``normal_class`` K and ``only_normal`` (fit), only class K is kept; otherwise every
    image is kept and ``labels`` is 1 for every class but K (the one-class protocol's test set).
    """
    try:
        import torchvision.datasets as tvd
    except Exception as e:  # a CPU-only torch beside a CUDA torchvision: its ops do not load
        raise DataError(f"{name}: torchvision cannot be imported ({e}); install torch and torchvision "
                        "from the same index (docs/install.md)") from None

    root = data_root or default_data_root()
    cls = getattr(tvd, TORCHVISION_DATASETS[name])
    try:
        ds = cls(root=root, train=train, download=True)
    except Exception as e:  # offline and not on disk: URLError, RuntimeError, ...
        raise DataError(f"{name}: not found under {root} and the download failed ({e}); "
                        "pass --data-root DIR with the dataset's files") from None
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    targets = torch.as_tensor(ds.targets)
    if data.ndim == 3:
        data = data[:, None]  # (N, H, W) -> (N, 1, H, W)
    else:
        data = data.permute(0, 3, 1, 2)  # CIFAR: (N, H, W, C)
    labels = None
    if normal_class is not None:
        if not 0 <= normal_class < int(targets.max()) + 1:
            raise DataError(f"--normal-class: {normal_class} is not a class of {name} (0..{int(targets.max())})")
        if only_normal:
            keep = targets == normal_class
            data, targets = data[keep], targets[keep]
        labels = (targets != normal_class).long()
    images = _convert_tensor(data.contiguous(), cfg)
    split = "train" if train else "test"
    return ImageSet(images=images, paths=[f"{name}:{split}:{i}" for i in range(len(images))],
                    labels=labels, classes=targets)


def _convert_tensor(data: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    """Channel and size policy for an already-decoded uint8 (N, C, H, W) tensor."""
    if data.shape[1] != cfg.channels:
        arrs = [a.permute(1, 2, 0).numpy() for a in data]
        data, _, _ = stack_images(arrs, DataConfig(channels=cfg.channels, size=None, resize=cfg.resize))
    if cfg.size and tuple(data.shape[-2:]) != tuple(cfg.size):
        import torch.nn.functional as F

        y = F.interpolate(data.float(), size=tuple(cfg.size), mode="bilinear", align_corners=False, antialias=True)
        data = y.round_().clamp_(0, 255).to(torch.uint8)
    return data


def load_digits(cfg: DataConfig, normal_class: int | None = None, only_normal: bool = True) -> ImageSet:
    """scikit-learn's 1,797 bundled 8x8 digits (values 0..16 -> 0..255)."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    data = torch.from_numpy(np.rint(d.images * (255 / 16)).astype(np.uint8))[:, None]
    targets = torch.from_numpy(d.target)
    labels = None
    if normal_class is not None:
        if only_normal:
            keep = targets == normal_class
            data, targets = data[keep], targets[keep]
        labels = (targets != normal_class).long()
    return ImageSet(images=_convert_tensor(data, cfg), paths=[f"digits:{i}" for i in range(len(data))],
                    labels=labels, classes=targets)


def texture_image(name: str) -> np.ndarray:
    """A grayscale photograph/texture bundled with scikit-image, as uint8 (H, W)."""
    import skimage.data as skd
    from skimage.color import rgb2gray

    fn = getattr(skd, name.replace("-", "_"), None)
    if fn is None:
        raise DataError(f"texture: {name!r} is not a scikit-image sample ({', '.join(TEXTURES)})")
    img = fn()
    if img.ndim == 3:
        img = np.rint(rgb2gray(img[..., :3]) * 255).astype(np.uint8)
    return img.astype(np.uint8)


def texture_crops(name: str, size: int, stride: int, rows: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Overlapping square crops from a horizontal band ``rows`` (fractions of the height).

    Taking training crops from one band and test crops from another keeps them disjoint.
    """
    img = torch.from_numpy(texture_image(name))
    h = img.shape[0]
    band = img[int(rows[0] * h): int(rows[1] * h)]
    patches = band.unfold(0, size, stride).unfold(1, size, stride)  # (nh, nw, size, size)
    return patches.reshape(-1, 1, size, size).contiguous()


def load_training_data(data: str, cfg: DataConfig, normal_class: int | None = None,
                       data_root: str | None = None, limit: int | None = None) -> ImageSet:
    """Resolve the ``DATA`` argument of ``aedetect fit``: an existing path wins over a name.
    ``limit`` (``--max-images``): a folder's files are decoded only up to that many images;
    a dataset by name comes decoded and is cut afterwards (by the caller)."""
    if Path(data).exists():
        return load_folder(data, cfg, limit)
    key = data.lower()
    if key in TORCHVISION_DATASETS:
        return load_torchvision(key, cfg, train=True, normal_class=normal_class, data_root=data_root)
    if key == "digits":
        return load_digits(cfg, normal_class)
    if key.startswith("texture:"):
        size = cfg.size[0] if cfg.size else 64
        crops = texture_crops(key.split(":", 1)[1], size, max(8, size // 2), rows=(0.0, 0.75))
        return ImageSet(images=_convert_tensor(crops, cfg), paths=[f"{key}:{i}" for i in range(len(crops))])
    raise DataError(
        f"{data}: no such file or folder, and not a dataset name "
        f"({', '.join([*TORCHVISION_DATASETS, *SAMPLE_DATASETS, 'texture:NAME'])})")
