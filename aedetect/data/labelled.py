"""Labelled test sets for ``aedetect score``: where a label (and a mask) for each image comes from.

* MVTec AD layout: ``test/good`` is normal, every other ``test/<kind>`` anomalous, masks in
  ``ground_truth/<kind>/<name>_mask.png``.
* A folder pair like anomalib's Folder dataset: a normal dir, an abnormal dir and an optional
  mask dir (masks matched to abnormal images by file stem, with or without ``_mask``).
* A torchvision dataset (or scikit-learn's digits) by name with a normal class K: the test
  split, class K normal and every other class anomalous.
* Any other folder: every image below it, unlabelled.

Images are converted by the model's channel rule and size policy (its ``DataConfig``);
unreadable files are skipped with one warning line and listed in ``ImageSet.skipped``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from aedetect.config import DataConfig
from aedetect.data.imageset import ImageSet, stack_images
from aedetect.data.io import ImageReadError, read_image
from aedetect.data.sources import (TORCHVISION_DATASETS, decode_usable, find_images, is_mvtec, load_digits,
                                   load_files, load_torchvision)
from aedetect.errors import DataError

log = logging.getLogger("aedetect")


def _read_mask(path: Path | None, cfg: DataConfig, shape: tuple[int, int]) -> np.ndarray | None:
    """A ground-truth mask brought to the model's size (by the same policy), as 0/1 uint8 (H, W)."""
    if path is None:
        return None
    try:
        arr, _ = read_image(path)
    except ImageReadError as e:
        log.warning("skipped mask %s: %s", path, e)
        return None
    arr = (arr[:, :, :1] > 0).astype(np.uint8) * 255
    t, _, _ = stack_images([arr], DataConfig(channels=1, size=shape, resize=cfg.resize))
    return (t[0, 0] > 127).numpy().astype(np.uint8)


def _mask_for(image: Path, mask_dir: Path | None) -> Path | None:
    if mask_dir is None:
        return None
    for stem in (f"{image.stem}_mask", image.stem):
        for ext in (".png", image.suffix, ".bmp", ".tif", ".tiff", ".jpg"):
            p = mask_dir / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def load_labelled_files(entries: list[tuple[Path, int, str, Path | None]], cfg: DataConfig, what: str) -> ImageSet:
    """Decode (path, label, kind, mask path) entries into a labelled ImageSet.

    Masks are kept only if every anomalous image has one (normal images get empty masks).
    """
    by_path = {p: (lab, kind, m) for p, lab, kind, m in entries}
    arrays, good, skipped = decode_usable([e[0] for e in entries], what)
    images, max_value, size = stack_images(arrays, cfg)
    labels = torch.tensor([by_path[p][0] for p in good], dtype=torch.long)
    kinds = [by_path[p][1] for p in good]
    masks = None
    if any(by_path[p][2] is not None for p in good):
        ms = []
        for p in good:
            lab, _, mpath = by_path[p]
            m = _read_mask(mpath, cfg, size) if mpath is not None else None
            if m is None and lab == 1:
                log.warning("%s: anomalous image without a readable mask; pixel metrics are off", p)
                ms = []
                break
            ms.append(m if m is not None else np.zeros(size, dtype=np.uint8))
        if ms:
            masks = torch.from_numpy(np.stack(ms))[:, None]
    return ImageSet(images=images, max_value=max_value, paths=[str(p) for p in good], labels=labels,
                    masks=masks, kinds=kinds, skipped=skipped)


def mvtec_entries(root: Path) -> list[tuple[Path, int, str, Path | None]]:
    """(image, label, kind, mask) for the ``test`` part of an MVTec AD category."""
    test = root / "test"
    if not test.is_dir():
        raise DataError(f"{root}: MVTec AD layout without a test folder")
    out: list[tuple[Path, int, str, Path | None]] = []
    for kind_dir in sorted(d for d in test.iterdir() if d.is_dir()):
        kind = kind_dir.name
        for p in find_images(kind_dir):
            mask = None if kind == "good" else _mask_for(p, root / "ground_truth" / kind)
            out.append((p, 0 if kind == "good" else 1, kind, mask))
    return out


def folder_entries(normal_dir: Path | None, abnormal_dir: Path | None,
                   mask_dir: Path | None) -> list[tuple[Path, int, str, Path | None]]:
    """(image, label, kind, mask) for an anomalib-Folder-like pair of folders."""
    out: list[tuple[Path, int, str, Path | None]] = []
    for d, lab in ((normal_dir, 0), (abnormal_dir, 1)):
        if d is None:
            continue
        if not d.is_dir():
            raise DataError(f"{d}: no such folder")
        kind = "normal" if lab == 0 else "abnormal"
        out += [(p, lab, kind, _mask_for(p, mask_dir) if lab else None) for p in find_images(d)]
    return out


def load_scoring_data(data: str, cfg: DataConfig, *, normal_dir: str | None = None, abnormal_dir: str | None = None,
                      mask_dir: str | None = None, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
    """Resolve ``aedetect score``'s DATA argument (and options) into an ImageSet with labels where known.

    ``normal_dir``/``abnormal_dir``/``mask_dir`` relative paths are taken below DATA.
    """
    root = Path(data)
    if normal_dir or abnormal_dir:
        def under(d: str | None) -> Path | None:
            if d is None:
                return None
            p = Path(d)
            return p if p.is_absolute() or p.exists() else root / p

        return load_labelled_files(folder_entries(under(normal_dir), under(abnormal_dir), under(mask_dir)),
                                   cfg, str(root))
    if root.exists():
        if root.is_dir() and is_mvtec(root):
            return load_labelled_files(mvtec_entries(root), cfg, str(root))
        return load_files(find_images(root), cfg, str(root))
    key = data.lower()
    if key in TORCHVISION_DATASETS:
        return load_torchvision(key, cfg, train=False, normal_class=normal_class, data_root=data_root,
                                only_normal=False)
    if key == "digits":
        return load_digits(cfg, normal_class, only_normal=False)
    raise DataError(f"{data}: no such file or folder, and not a dataset name "
                    f"({', '.join([*TORCHVISION_DATASETS, 'digits'])})")
