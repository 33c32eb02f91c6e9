"""The denoiser as a Python object: ``Denoiser(...).fit(images)`` and ``.denoise(image_or_batch)``.

Images keep what they came with: an 8-bit image comes back 8-bit, 16-bit stays 16-bit, a float
image stays float, the shape is unchanged, and an alpha channel passes through untouched.

Channel rule (also used by ``aedetect denoise``):
  * ``pretrained`` (no name): the shipped gray model with the shipped colour one beside it; each
    image goes to the model for its mode;
  * grayscale model, RGB image: each colour channel is denoised as a grayscale image (the noise
    of most sensors is roughly independent per channel, which is what the gray model learned),
    and the run says so once: a colour model also uses the correlation between the channels;
  * RGB model, grayscale image: refused with one line. Repeating the plane would give the RGB
    model perfectly correlated "colour" noise it never saw; train a grayscale model instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet
from aedetect.errors import DataError, ModelFileError
from aedetect.denoise.settings import DEFAULT_MAX_PIXELS, DEFAULT_OVERLAP, check_tiling
from aedetect.denoise.tiling import run_tiled

ImageLike = np.ndarray | Tensor
log = logging.getLogger("aedetect")


class Denoiser:
    """A trained (or to-be-trained) denoising CAE plus the tiling settings for inference.

    ``noise``/``level`` set the noise recipe (see aedetect.denoise.noise), e.g. ``noise="gaussian",
    level=(5, 50)`` for a model blind to sigma 5..50 on the 0..255 scale.
    """

    def __init__(self, preset: str = "denoise-unet", *, channels: int | None = None, noise: str | list[str] | None = None,
                 level: float | tuple[float, float] | dict[str, Any] | None = None, epochs: int | None = None,
                 recipe: str | Path | None = None, overrides: dict[str, Any] | None = None, device: str = "auto",
                 max_tile_pixels: int = DEFAULT_MAX_PIXELS, overlap: int = DEFAULT_OVERLAP) -> None:
        from aedetect.core.presets import build_config

        ov: dict[str, Any] = {"task": "denoise", "train": {"device": device}}
        if channels is not None:
            ov["data"] = {"channels": channels}
        if epochs is not None:
            ov["train"]["epochs"] = epochs
        if noise is not None or level is not None:
            ov["denoise"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                             (("noise", noise), ("level", level)) if v is not None}
        for k, v in (overrides or {}).items():  # explicit overrides win, one level deep
            ov[k] = {**ov[k], **v} if isinstance(v, dict) and isinstance(ov.get(k), dict) else v
        self.config: Config = build_config(preset, recipe, ov)
        check_tiling(max_tile_pixels, overlap)
        self.max_tile_pixels = max_tile_pixels
        self.overlap = overlap
        self.model: torch.nn.Module | None = None
        self.model_path: Path | None = None
        self.sigma: float | str = "auto"
        self.ensemble = 1
        self.colour: Denoiser | None = None  # ``pretrained``: the colour model beside the gray one
        self._said_per_channel = False

    # ---- training / loading -------------------------------------------------------------
    def fit(self, images: str | Path | ImageSet | list[np.ndarray] | np.ndarray, out: str | Path | None = None) -> "Denoiser":
        """Train on clean images (a folder, an ImageSet, or arrays of any sizes); writes a run folder."""
        from aedetect.core.training.fit import fit

        data: Any = images
        if isinstance(images, Path):
            data = str(images)
        elif isinstance(images, np.ndarray):
            data = [images] if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] <= 4) else list(images)
        if isinstance(data, list):
            data = [a[:, :, None] if a.ndim == 2 else a for a in data]
        output = fit(data, self.config, out)
        self.model = output.result.model.eval()
        self.model_path = output.model_path
        return self

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", max_tile_pixels: int = DEFAULT_MAX_PIXELS,
             overlap: int = DEFAULT_OVERLAP, sigma: float | str = "auto", ensemble: int = 1) -> "Denoiser":
        """A denoiser from a model file written by ``aedetect fit --task denoise``, or a shipped
        one (``pretrained:gray``, ``pretrained:rgb``; ``pretrained`` for the two, each image to the one for
        its mode). ``sigma``: the noise level (0..255 scale) for a model with a
        noise-level input, or ``"auto"`` to estimate it per image (aedetect.denoise.sigma).
        ``ensemble``: average over this many flips/turns (1, 2, 4, 8; aedetect.denoise.ensemble)."""
        from aedetect.core.pretrained import BY_MODE, locate
        from aedetect.denoise.settings import check_ensemble, parse_sigma

        if str(path) == BY_MODE:  # the shipped pair: gray images to the gray model, colour to the colour one
            gray, rgb = (cls.load(m, device, max_tile_pixels, overlap, sigma, ensemble)
                         for m in locate(path, pair=True).members)
            gray.colour = rgb
            return gray
        sigma = parse_sigma(sigma)
        check_ensemble(ensemble)
        from aedetect.core.modelfile.file import load_record, read_record
        from aedetect.core.training.train import resolve_device

        from aedetect.core.checks import check_device

        check_tiling(max_tile_pixels, overlap)  # before the model is read
        check_device(device)
        record = read_record(path)  # the file's one read; the model is built from it below
        task = record.config.task  # from the metadata: another task's file builds nothing
        if task != "denoise":
            article = "an" if task[:1] in "aeiou" else "a"
            raise ModelFileError(f"{path}: {article} {task} model; `denoise` needs a model trained with --task denoise")
        mf = load_record(record, device=resolve_device(device))
        self = cls.__new__(cls)
        self.config, self.model, self.model_path = mf.config, mf.model.eval(), Path(path)
        self.max_tile_pixels, self.overlap = max_tile_pixels, overlap
        self.sigma = sigma
        self.ensemble = ensemble
        self.colour, self._said_per_channel = None, False
        return self

    @property
    def takes_sigma(self) -> bool:
        """Whether the model has a noise-level input (one model for every level)."""
        return bool(self.config.model.noise_map)

    @property
    def channels(self) -> int:
        return self.config.data.channels

    # ---- inference ----------------------------------------------------------------------
    def sigmas(self, x: Tensor, sigma: float | str | Tensor | None = None) -> Tensor:
        """(N,) noise levels (0..255 scale) for a [0, 1] batch: the given one, or estimated."""
        from aedetect.denoise.sigma import estimate_sigma

        s = self.sigma if sigma is None else sigma
        if isinstance(s, Tensor):
            return s.to(x.device, torch.float32).expand(x.shape[0])
        if s == "auto":
            return estimate_sigma(x)
        return torch.full((x.shape[0],), float(s), device=x.device)

    @torch.no_grad()
    def denoise_tensor(self, x: Tensor, sigma: float | str | Tensor | None = None) -> Tensor:
        """(N, C, H, W) float in [0, 1] (C = the model's channels) -> the same, denoised.

        ``sigma`` (a model with a noise-level input only): a level on the 0..255 scale, an (N,)
        tensor of them, or ``"auto"``; default the Denoiser's ``sigma``."""
        if self.model is None:
            raise DataError("this Denoiser has no model yet: call .fit(images) or Denoiser.load(path)")
        if self.channels == 1 and x.shape[1] > 1:
            if self.colour is not None and x.shape[1] == self.colour.channels:
                self.colour.ensemble = self.ensemble  # the pair's settings, whichever was set last
                return self.colour.denoise_tensor(x, self.sigma if sigma is None else sigma)
            return self._per_channel(x, sigma)
        p = next(self.model.parameters())
        symmetric = self.config.data.scaling == "symmetric"
        y = x.to(p.device, torch.float32)
        model = self.model
        if self.takes_sigma:
            from aedetect.denoise.noise import level_map

            levels = self.sigmas(y, sigma)
            net = self.model

            def model(tile: Tensor) -> Tensor:  # type: ignore[misc]
                return net(torch.cat([tile, level_map(levels, tile)], 1))
        y = y * 2 - 1 if symmetric else y
        stride = self.config.model.total_stride
        budget = max(1, self.max_tile_pixels // max(1, y.shape[0]))
        from aedetect.denoise.ensemble import ensembled

        y = run_tiled(ensembled(model, self.ensemble), y, max_pixels=budget, overlap=self.overlap, multiple=stride)
        y = (y + 1) / 2 if symmetric else y
        return y.to(x.device)

    def _per_channel(self, x: Tensor, sigma: float | str | Tensor | None) -> Tensor:
        """A gray model on a colour batch: every channel as its own gray image (and said once)."""
        if not self._said_per_channel:
            self._said_per_channel = True
            log.warning("a grayscale model on colour images: each channel is denoised as its own gray image; "
                        "a colour model (`pretrained`, or pretrained:rgb) also uses the channels together")
        n, c = x.shape[:2]
        if isinstance(sigma, Tensor):
            sigma = sigma.expand(n).repeat_interleave(c)
        y = self.denoise_tensor(x.reshape(n * c, 1, *x.shape[2:]), sigma)
        return y.reshape(x.shape)

    def denoise_array(self, arr: np.ndarray) -> np.ndarray:
        """One (H, W) or (H, W, C) image, C in 1..4, uint8/uint16/float -> same shape and dtype."""
        a = arr[:, :, None] if arr.ndim == 2 else arr
        if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
            raise DataError(f"expected an (H, W) or (H, W, C<=4) image, got shape {arr.shape}")
        c = a.shape[2]
        color, alpha = (a[:, :, :c - 1], a[:, :, c - 1:]) if c in (2, 4) else (a, None)
        if color.shape[2] == 1 and self.channels == 3:
            raise DataError("an RGB denoiser cannot denoise a grayscale image; use a grayscale model "
                            "(or `pretrained`, which takes the gray or the colour model by each image's mode)")
        if np.issubdtype(color.dtype, np.integer):
            maxv = float(np.iinfo(color.dtype).max)
        else:
            maxv = 1.0
        x = torch.from_numpy(np.ascontiguousarray(color, dtype=np.float32) / maxv).permute(2, 0, 1)[None]
        y = self.denoise_tensor(x)
        out = y[0].permute(1, 2, 0).cpu().numpy()
        if maxv > 1:
            out = np.clip(np.rint(out * maxv), 0, maxv).astype(color.dtype)
        else:
            out = out.astype(color.dtype, copy=False)
        if alpha is not None:
            out = np.concatenate([out, alpha], axis=2)
        return out.reshape(arr.shape)

    def denoise(self, image_or_batch: ImageLike | list[np.ndarray]) -> Any:
        """Denoise one image or a batch and return the same kind of thing.

        numpy: (H, W) or (H, W, C<=4) is one image; (N, H, W) / (N, H, W, C) a batch.
        torch: (C, H, W) or (N, C, H, W) float in [0, 1]. A list: each element on its own.
        """
        x = image_or_batch
        if isinstance(x, list):
            return [self.denoise(a) for a in x]
        if isinstance(x, Tensor):
            batch = x[None] if x.ndim == 3 else x
            y = self.denoise_tensor(batch).to(x.dtype)
            return y[0] if x.ndim == 3 else y
        x = np.asarray(x)
        if x.ndim == 2 or (x.ndim == 3 and x.shape[2] <= 4):
            return self.denoise_array(x)
        if x.ndim in (3, 4):
            return np.stack([self.denoise_array(a) for a in x])
        raise DataError(f"cannot denoise an array of shape {x.shape}")
