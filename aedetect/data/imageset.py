"""The decoded-once image cache every task trains and scores from.

Images are decoded a single time into one integer tensor (uint8 for 8-bit sources, int32
holding 0..65535 for 16-bit ones) of shape (N, C, H, W). Batches are sliced from it and
scaled on the device, so an epoch costs no file I/O, no PIL and no per-sample transforms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aedetect.data.settings import DataConfig
from aedetect.util.text import printable

_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's "L" conversion


@dataclass
class ImageSet:
    """Decoded images plus where they came from.

    ``labels`` is 0 (normal) / 1 (anomalous) where known, else None; ``classes`` the dataset's
    own class ids where it has them. ``masks`` (N, 1, H, W)
    uint8 where ground-truth masks exist. ``skipped`` lists (path, reason) of unreadable files.
    """

    images: Tensor
    max_value: float = 255.0
    paths: list[str] = field(default_factory=list)
    labels: Tensor | None = None
    classes: Tensor | None = None
    masks: Tensor | None = None
    kinds: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: Tensor | list[int]) -> "ImageSet":
        idx = torch.as_tensor(index, dtype=torch.long)
        keep = idx.tolist()

        def pick(xs: list[str]) -> list[str]:
            return [xs[i] for i in keep]

        return ImageSet(
            images=self.images[idx],
            max_value=self.max_value,
            paths=pick(self.paths) if self.paths else [],
            labels=self.labels[idx] if self.labels is not None else None,
            classes=self.classes[idx] if self.classes is not None else None,
            masks=self.masks[idx] if self.masks is not None else None,
            kinds=pick(self.kinds) if self.kinds else None,
            skipped=list(self.skipped),
        )

    def split(self, val_fraction: float, seed: int) -> tuple["ImageSet", "ImageSet"]:
        """Deterministic (train, validation) split: the same seed gives the same split."""
        n = len(self)
        if n < 2:
            raise ValueError(f"need at least 2 images to split off a validation set, got {n}")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=g)
        n_val = min(n - 1, max(1, round(n * val_fraction)))
        return self.subset(perm[n_val:]), self.subset(perm[:n_val])

    def to_float(self, x: Tensor, scaling: str) -> Tensor:
        """Integer batch -> float in [0, 1] ('unit') or [-1, 1] ('symmetric')."""
        y = x.float().div_(self.max_value)
        return y.mul_(2).sub_(1) if scaling == "symmetric" else y


def source_name(data: object) -> str:
    """What a model file or metrics.json says the images were: the folder, file or dataset
    name (printable), or 'ImageSet' for images passed in memory."""
    return "ImageSet" if isinstance(data, ImageSet) else printable(data)


def scale_to_float(x: Tensor, max_value: float, scaling: str) -> Tensor:
    """Stateless form of :meth:`ImageSet.to_float` for code without an ImageSet."""
    y = x.float() / max_value
    return y * 2 - 1 if scaling == "symmetric" else y


def float_to_unit(x: Tensor, scaling: str) -> Tensor:
    """Model-space values back to [0, 1] for display and metrics."""
    return ((x + 1) / 2 if scaling == "symmetric" else x).clamp(0, 1)


def convert_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """The stated channel rule: alpha is dropped; gray -> RGB repeats the plane;
    RGB -> gray is the ITU-R 601 luma (what Pillow's ``convert('L')`` computes)."""
    c = arr.shape[2]
    if c in (2, 4):
        arr = arr[:, :, : c - 1]
        c -= 1
    if c == channels:
        return arr
    if channels == 3:
        return np.repeat(arr, 3, axis=2)
    luma = (arr.astype(np.float32) @ _LUMA.numpy())[:, :, None]
    return np.clip(np.rint(luma), 0, np.iinfo(arr.dtype).max).astype(arr.dtype)


def fit_size(x: Tensor, size: tuple[int, int] | None, policy: str) -> Tensor:
    """Apply the size policy to one (C, H, W) integer image.

    resize: bilinear with antialiasing to exactly ``size`` (aspect ratio not kept).
    center_crop: crop the centre; images smaller than ``size`` are resized up first.
    pad_crop: pad (replicate) or crop each side to ``size`` without resampling.
    none: keep the size; every image must then already match.
    """
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    h, w = size
    dtype = x.dtype
    if policy == "none":
        raise ValueError(f"size {x.shape[-2]}x{x.shape[-1]} differs from {h}x{w} and resize policy is 'none'")
    if policy == "center_crop":
        ih, iw = x.shape[-2:]
        if ih < h or iw < w:
            s = max(h / ih, w / iw)
            x = fit_size(x, (max(h, round(ih * s)), max(w, round(iw * s))), "resize")
            ih, iw = x.shape[-2:]
        top, left = (ih - h) // 2, (iw - w) // 2
        return x[..., top: top + h, left: left + w]
    if policy == "pad_crop":
        ih, iw = x.shape[-2:]
        ph, pw = max(0, h - ih), max(0, w - iw)
        if ph or pw:
            x = F.pad(x[None].float(), (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")[0].to(dtype)
        ih, iw = x.shape[-2:]
        top, left = (ih - h) // 2, (iw - w) // 2
        return x[..., top: top + h, left: left + w]
    y = F.interpolate(x[None].float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    info_max = 255 if dtype == torch.uint8 else 65535
    return y.round_().clamp_(0, info_max).to(dtype)


class Conversions:
    """What :func:`stack_images` changed so that images fit a model, counted per kind, for one
    warning line per run (a gray model scoring colour photos, or 28-pixel images scored by a
    64-pixel model, converts every image and may flag them all: the user should hear of it)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def note(self, a: np.ndarray, cfg: DataConfig, size: tuple[int, int]) -> None:
        if a.shape[2] != cfg.channels:
            self._add(f"{a.shape[2]} channel(s) to {cfg.channels}")
        if tuple(a.shape[:2]) != tuple(size):
            self._add(f"{a.shape[0]}x{a.shape[1]} {cfg.resize.replace('_', ' ')} to {size[0]}x{size[1]}")

    def _add(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def summary(self, what: str) -> str | None:
        """``what``: images converted ...; None when nothing was."""
        if not self.counts:
            return None
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])
        parts = [f"{n} from {k}" for k, n in top[:4]] + ([f"{len(top) - 4} other kinds"] if len(top) > 4 else [])
        return f"{what}: converted to fit the model: " + "; ".join(parts)


def stack_images(arrays: list[np.ndarray], cfg: DataConfig,
                 conversions: Conversions | None = None) -> tuple[Tensor, float, tuple[int, int]]:
    """Convert decoded arrays to one (N, C, H, W) tensor by the channel and size policies.

    Without ``cfg.size`` the most common size wins and the rest follow the size policy. A
    tiled model's images are brought to ``cfg.image_size`` (whole images, cut into tiles of
    ``cfg.size`` when scored). ``conversions``: counts what had to be changed (channels, size).
    """
    if not arrays:
        raise ValueError("no images")
    sixteen = any(a.dtype == np.uint16 for a in arrays)
    given = cfg.image_size or cfg.size
    size = tuple(given) if given else capped_size(_most_common_size(arrays), cfg.max_side)
    out = torch.empty((len(arrays), cfg.channels, *size), dtype=torch.int32 if sixteen else torch.uint8)
    for i, a in enumerate(arrays):
        if conversions is not None:
            conversions.note(a, cfg, size)  # type: ignore[arg-type]
        out[i] = fit_size(to_chw(a, cfg.channels, sixteen), size, cfg.resize).to(out.dtype)  # type: ignore[arg-type]
    return out, (65535.0 if sixteen else 255.0), size  # type: ignore[return-value]


def to_chw(a: np.ndarray, channels: int, sixteen: bool) -> Tensor:
    """One decoded (H, W, C) array -> a (C, H, W) integer tensor by the channel rule, on the
    16-bit scale (int32) when any image of its set is 16-bit (8-bit values times 257: same
    brightness), else uint8."""
    a = convert_channels(a, channels)
    if sixteen:
        a = a.astype(np.int32) * (257 if a.dtype == np.uint8 else 1)
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


def capped_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled down, aspect kept, so that its longer side is at most ``max_side`` (0 = as is)."""
    h, w = size
    if max_side <= 0 or max(h, w) <= max_side:
        return (h, w)
    s = max_side / max(h, w)
    return (max(1, round(h * s)), max(1, round(w * s)))


def _most_common_size(arrays: list[np.ndarray]) -> tuple[int, int]:
    counts: dict[tuple[int, int], int] = {}
    for a in arrays:
        counts[a.shape[:2]] = counts.get(a.shape[:2], 0) + 1
    return max(counts, key=lambda k: counts[k])
