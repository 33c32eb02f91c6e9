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

:func:`load_scoring_data` decodes everything into one ImageSet; :func:`open_scoring_data` resolves
the same DATA into a :class:`ScoringStream` that decodes one batch at a time (what ``aedetect
score`` uses, so a folder of any length is scored in bounded memory).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from aedetect.data.settings import DataConfig
from aedetect.data.shard import Shard
from aedetect.data.imageset import Conversions, ImageSet, stack_images
from aedetect.data.io import ImageReadError, read_image
from aedetect.data.sources import (TORCHVISION_DATASETS, decode_usable, find_images, is_mvtec, load_digits,
                                   load_files, load_torchvision, no_files_error, none_readable_error)
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


@dataclass
class _Files:
    """DATA resolved to files, not yet decoded: (image, label, kind, mask) entries."""

    entries: list[tuple[Path, int, str, Path | None]]
    what: str
    labelled: bool


def _resolve(data: str, cfg: DataConfig, *, normal_dir: str | None, abnormal_dir: str | None,
             mask_dir: str | None, normal_class: int | None, data_root: str | None) -> _Files | ImageSet:
    """Files for a folder (pair), an already decoded ImageSet for a dataset by name."""
    root = Path(data)
    if normal_dir or abnormal_dir:
        def under(d: str | None) -> Path | None:
            if d is None:
                return None
            p = Path(d)  # below DATA first, as documented; else as given (from the working folder)
            return p if p.is_absolute() or (not (root / p).exists() and p.exists()) else root / p

        return _Files(folder_entries(under(normal_dir), under(abnormal_dir), under(mask_dir)), str(root), True)
    if root.exists():
        if root.is_dir() and is_mvtec(root):
            return _Files(mvtec_entries(root), str(root), True)
        return _Files([(p, 0, "", None) for p in find_images(root)], str(root), False)
    key = data.lower()
    if key in TORCHVISION_DATASETS:
        return load_torchvision(key, cfg, train=False, normal_class=normal_class, data_root=data_root,
                                only_normal=False)
    if key == "digits":
        return load_digits(cfg, normal_class, only_normal=False)
    raise DataError(f"{data}: no such file or folder, and not a dataset name "
                    f"({', '.join([*TORCHVISION_DATASETS, 'digits'])})")


def load_scoring_data(data: str, cfg: DataConfig, *, normal_dir: str | None = None, abnormal_dir: str | None = None,
                      mask_dir: str | None = None, normal_class: int | None = None,
                      data_root: str | None = None) -> ImageSet:
    """Resolve ``aedetect score``'s DATA argument (and options) into an ImageSet with labels where known.

    ``normal_dir``/``abnormal_dir``/``mask_dir`` relative paths are taken below DATA.
    """
    r = _resolve(data, cfg, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
                 normal_class=normal_class, data_root=data_root)
    return r if isinstance(r, ImageSet) else _decode_all(r, cfg)


def _decode_all(r: _Files, cfg: DataConfig) -> ImageSet:
    """Every file of ``r`` decoded into one ImageSet (with labels, kinds and masks if labelled)."""
    if r.labelled:
        return load_labelled_files(r.entries, cfg, r.what)
    return load_files([e[0] for e in r.entries], cfg, r.what)


class ScoringStream:
    """DATA as a sequence of small ImageSets (:meth:`batches`), in the order of
    :func:`load_scoring_data` and with the same labels, kinds, masks and skipped files.

    ``n_files``: images to expect, unreadable ones included. ``labelled``: batches carry labels.
    ``with_masks``: batches carry ground-truth masks (empty ones for images without a mask).
    ``masks_ok``: pixel metrics are possible (masks for every readable anomalous image, and at
    least one mask file); final only once :meth:`batches` is exhausted.
    Each batch's ``skipped`` lists the unreadable files of that batch only.
    """

    n_files: int = 0
    labelled: bool = False
    with_masks: bool = False
    positions: dict[str, int] | None = None  # path -> place in the unsharded order (sharded streams)

    @property
    def masks_ok(self) -> bool:
        raise NotImplementedError

    # What masks_ok is made of, kept apart so that shards can be merged (anomaly/jobs/merge.py):
    # every readable anomalous image had a mask; some readable image had a mask.
    all_anomalous_masked: bool = True
    any_masked: bool = False

    def anomalous_kinds(self) -> list[str]:
        """The kinds of the anomalous images (MVTec AD's defect folders), known before decoding."""
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[ImageSet]:
        raise NotImplementedError


class ImageSetStream(ScoringStream):
    """An ImageSet already in memory, sliced (views, no copies); unnamed images get their index
    as their path."""

    def __init__(self, data: ImageSet) -> None:
        self.data = data
        self.n_files = len(data) + len(data.skipped)
        self.labelled = data.labels is not None
        self.with_masks = data.masks is not None
        self.all_anomalous_masked = self.any_masked = self.with_masks

    @property
    def masks_ok(self) -> bool:
        return self.data.masks is not None

    def anomalous_kinds(self) -> list[str]:
        d = self.data
        if d.labels is None or not d.kinds:
            return []
        return sorted({k for k, lab in zip(d.kinds, d.labels.tolist()) if lab == 1})

    def batches(self, batch_size: int) -> Iterator[ImageSet]:
        d, n = self.data, len(self.data)
        for i in range(0, max(n, 1), batch_size):
            j = min(i + batch_size, n)
            yield ImageSet(
                images=d.images[i:j], max_value=d.max_value,
                paths=d.paths[i:j] if d.paths else [str(k) for k in range(i, j)],
                labels=d.labels[i:j] if d.labels is not None else None,
                classes=d.classes[i:j] if d.classes is not None else None,
                masks=d.masks[i:j] if d.masks is not None else None,
                kinds=d.kinds[i:j] if d.kinds else None,
                skipped=list(d.skipped) if j >= n else [])


class FileStream(ScoringStream):
    """Image files decoded a batch at a time (in threads, the next files while the caller works
    on this batch), so at most about three batches of decoded images exist at once.

    Size: the model's ``data.size`` (required). Bit depth is decided per batch: a batch of 8-bit
    files is uint8 even if other batches hold 16-bit files (the value scale is the same; only an
    8-bit image that must be resized in a mixed folder rounds to 8 rather than 16 bits).
    """

    def __init__(self, entries: list[tuple[Path, int, str, Path | None]], cfg: DataConfig, what: str,
                 labelled: bool) -> None:
        if not entries:
            raise no_files_error(what)
        if cfg.size is None:
            raise ValueError("FileStream needs DataConfig.size")
        self.entries, self.cfg, self.what, self.labelled = entries, cfg, what, labelled
        self.n_files = len(entries)
        self.with_masks = labelled and any(e[3] is not None for e in entries)
        self.conversions = Conversions()  # told once, at the end of the stream
        self.all_anomalous_masked = True  # every readable anomalous image has a readable mask
        self.any_masked = False  # some readable image has a mask file

    @property
    def masks_ok(self) -> bool:
        return self.with_masks and self.all_anomalous_masked and self.any_masked

    def anomalous_kinds(self) -> list[str]:
        return sorted({e[2] for e in self.entries if e[1] == 1}) if self.labelled else []

    def batches(self, batch_size: int) -> Iterator[ImageSet]:
        def read(p: Path) -> tuple[np.ndarray | None, str | None]:
            try:
                return read_image(p)[0], None
            except ImageReadError as e:
                return None, str(e)

        # Files are read in chunks of batch_size, but batches hold batch_size *readable* images
        # (the last fewer), as a slice of load_scoring_data's ImageSet would: a forward pass's
        # numbers may depend on its batch (oneDNN picks kernels by shape), so the scores then
        # equal those of AnomalyDetector.score on the whole set bit for bit.
        chunks = [self.entries[i:i + batch_size] for i in range(0, len(self.entries), batch_size)]
        ready: list[tuple[tuple[Path, int, str, Path | None], np.ndarray]] = []
        skipped: list[tuple[str, str]] = []
        n_good, first_bad = 0, None
        with ThreadPoolExecutor(min(8, os.cpu_count() or 2)) as ex:
            def submit(k: int) -> list[Future]:
                return [ex.submit(read, e[0]) for e in chunks[k]] if k < len(chunks) else []

            pending = submit(0)
            for k, chunk in enumerate(chunks):
                decoded = [f.result() for f in pending]
                pending = submit(k + 1)
                for entry, (arr, err) in zip(chunk, decoded):
                    if arr is None:
                        log.warning("skipped %s: %s", entry[0], err)
                        skipped.append((str(entry[0]), err or "unreadable"))
                        first_bad = first_bad or skipped[-1]
                    else:
                        ready.append((entry, arr))
                del decoded
                last = k == len(chunks) - 1
                while len(ready) >= batch_size or (last and (ready or skipped)):
                    take, ready = ready[:batch_size], ready[batch_size:]
                    n_good += len(take)
                    yield self._assemble(take, skipped)
                    skipped = []
        if n_good == 0:
            raise none_readable_error(self.what, self.n_files, first_bad or ("?", "unreadable"))
        note = self.conversions.summary(self.what)
        if note:
            log.warning("%s", note)

    def _assemble(self, good: list[tuple[tuple[Path, int, str, Path | None], np.ndarray]],
                  skipped: list[tuple[str, str]]) -> ImageSet:
        size = tuple(self.cfg.image_size or self.cfg.size)  # type: ignore[arg-type]  # a tiled model: whole images
        if good:
            images, max_value, _ = stack_images([arr for _, arr in good], self.cfg, self.conversions)
        else:
            images, max_value = torch.empty((0, self.cfg.channels, *size), dtype=torch.uint8), 255.0
        entries = [e for e, _ in good]
        masks = None
        if self.with_masks:
            ms = []
            for p, lab, _, mpath in entries:
                m = _read_mask(mpath, self.cfg, size) if mpath is not None else None  # type: ignore[arg-type]
                self.any_masked |= mpath is not None
                if m is None and lab == 1 and self.all_anomalous_masked:
                    log.warning("%s: anomalous image without a readable mask; pixel metrics are off", p)
                    self.all_anomalous_masked = False
                ms.append(m if m is not None else np.zeros(size, dtype=np.uint8))
            masks = torch.from_numpy(np.stack(ms))[:, None] if ms else torch.zeros((0, 1, *size), dtype=torch.uint8)
        return ImageSet(
            images=images, max_value=max_value, paths=[str(e[0]) for e in entries],
            labels=torch.tensor([e[1] for e in entries], dtype=torch.long) if self.labelled else None,
            masks=masks, kinds=[e[2] for e in entries] if self.labelled else None, skipped=skipped)


def open_scoring_data(data: str, cfg: DataConfig, *, normal_dir: str | None = None, abnormal_dir: str | None = None,
                      mask_dir: str | None = None, normal_class: int | None = None,
                      data_root: str | None = None, shard: Shard | None = None,
                      max_images: int | None = None) -> ScoringStream:
    """:func:`load_scoring_data` as a :class:`ScoringStream`: folders are decoded batch by batch
    (datasets by name are small and come decoded; so do folders for a model without a fixed
    ``data.size``, whose size is the most common one of the whole folder). ``max_images``: only
    the first N files are ever decoded (the first N images of a dataset by name).

    ``shard``: only that shard's share of the files (aedetect.data.shard, of the first
    ``max_images``); the stream's ``positions`` then maps each path to its place in the
    unsharded order, so shard outputs can be merged back into that order."""
    r = _resolve(data, cfg, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
                 normal_class=normal_class, data_root=data_root)
    if max_images is not None:
        if isinstance(r, ImageSet):
            r = r.subset(list(range(min(max_images, len(r)))))
        else:
            r.entries = r.entries[:max_images]
    positions = None
    if shard is not None:
        r, positions = _shard_of(r, shard)
    if isinstance(r, ImageSet):
        stream: ScoringStream = ImageSetStream(r)
    elif cfg.size is None:
        stream = ImageSetStream(_decode_all(r, cfg))
    else:
        stream = FileStream(r.entries, cfg, r.what, r.labelled)
    stream.positions = positions
    return stream


def _shard_of(r: _Files | ImageSet, shard: Shard) -> tuple[_Files | ImageSet, dict[str, int]]:
    """The shard's part of resolved DATA, and each kept path's position in the whole."""
    n = len(r) if isinstance(r, ImageSet) else len(r.entries)
    keep = list(shard.positions(n))
    if not keep:
        raise DataError(f"--shard {shard}: no images for this shard ({n} in all; use fewer shards)")
    if isinstance(r, ImageSet):
        # Unnamed images are named by their index in the whole set, as one process names them.
        paths = r.paths or [str(i) for i in range(n)]
        part = replace(r, paths=paths).subset(keep)
        return part, {paths[i]: i for i in keep}
    return _Files([r.entries[i] for i in keep], r.what, r.labelled), {str(r.entries[i][0]): i for i in keep}
