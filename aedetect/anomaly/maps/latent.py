"""The latent kNN score: latent vectors of images, a bank of normal ones, and the distance
to the nearest of them; the bank travels in the model file as float16 base64 text."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.anomaly.settings import AnomalySettings
from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, scale_to_float


PIXEL_GRID = 32  # ``latent_source = pixels``: the input averaged to at most this many pixels a side


def latent_vectors(z: Tensor, skips: list[Tensor], s: AnomalySettings, x: Tensor,
                   backbone: nn.Module | None = None, unit: Tensor | None = None,
                   features: Tensor | None = None) -> Tensor:
    """(N, D) vectors of the latent kNN score, from one ``forward_parts`` pass over ``x``
    (``latent_source = pretrained``: from the ``backbone`` on ``unit``, the images in [0, 1]).

    ``latent_source = code``: the code, pooled to at most 4x4. ``features``: a level's feature
    map averaged to a ``latent_grid`` grid, which keeps where in the image each feature fired;
    on one-class MNIST it beat the code (docs/decisions/0001, 0008). ``cosine`` scales each vector to unit length, so the distance compares the pattern of the features,
    not their overall strength. ``pixels``: the input itself (as the model sees it), averaged to
    at most 32x32: the raw-pixel kNN that is the strongest simple baseline on small aligned
    data (docs/benchmarks/anomaly.md), here a candidate next to the model's
    own vectors, so the selection can add it where it helps. ``pretrained``: ImageNet features
    (aedetect.anomaly.maps.backbone) of the image enlarged to about 56 pixels, averaged to a 2x2
    grid (704 numbers): what a network that has seen a million pictures finds in the whole
    image, where the small autoencoder sees only what its few normal images taught it;
    ``features``: the backbone's output at the vector's scale where the caller has it (the
    ``pretrained`` map's, when both enlarge the images alike).
    """
    if s.latent_source == "pretrained":
        from aedetect.anomaly.maps.backbone import LATENT_GRID, LATENT_TARGET_SIDE, scale_of

        if backbone is None or unit is None:
            raise ValueError("latent_source 'pretrained' needs the backbone and the images in [0, 1]")
        f = features if features is not None else \
            backbone(unit.float(), scale_of(s.pretrained_scale, tuple(unit.shape[-2:]), LATENT_TARGET_SIDE))
        v = F.adaptive_avg_pool2d(f, LATENT_GRID).flatten(1)
    elif s.latent_source == "pixels":
        g = (min(PIXEL_GRID, x.shape[-2]), min(PIXEL_GRID, x.shape[-1]))
        v = (F.adaptive_avg_pool2d(x.float(), g) if g != tuple(x.shape[-2:]) else x.float()).flatten(1)
    elif s.latent_source == "features":
        v = F.adaptive_avg_pool2d(skips[s.latent_level].float(), s.latent_grid).flatten(1)
    else:
        if z.ndim == 4 and (z.shape[-1] > 4 or z.shape[-2] > 4):
            z = F.adaptive_avg_pool2d(z, (min(4, z.shape[-2]), min(4, z.shape[-1])))
        v = z.flatten(1).float()
    return F.normalize(v, dim=1) if s.latent_metric == "cosine" else v


@torch.no_grad()
def encode_latent(model: nn.Module, images: Tensor, max_value: float, cfg: Config, s: AnomalySettings,
                  device: torch.device | str = "cpu", batch_size: int = 64, backbone: nn.Module | None = None) -> Tensor:
    """(N, D) latent vectors of integer images (N, C, H, W), in batches; no maps are made."""
    model.eval()
    out = []
    if s.latent_source == "pretrained":  # the extractor's activations bound a pass's memory
        from aedetect.anomaly.maps.backbone import LATENT_TARGET_SIDE, feature_batch, scale_of

        size = tuple(images.shape[-2:])
        batch_size = feature_batch(size, scale_of(s.pretrained_scale, size, LATENT_TARGET_SIDE), batch_size)  # type: ignore[arg-type]
    for i in range(0, images.shape[0], batch_size):
        raw = images[i:i + batch_size].to(device)
        xb = scale_to_float(raw, max_value, cfg.data.scaling)
        if s.latent_source == "pretrained":  # the autoencoder is not needed
            z, skips = xb, []
        else:
            _, z, skips = model.forward_parts(xb)  # type: ignore[operator]
        out.append(latent_vectors(z, skips, s, xb, backbone, raw.float() / max_value).cpu())
    return torch.cat(out)


def train_latent_bank(model: nn.Module, images: ImageSet, cfg: Config, s: AnomalySettings,
                      device: torch.device | str = "cpu", batch_size: int = 64, seed: int = 0,
                      backbone: nn.Module | None = None) -> Tensor:
    """Latent vectors of a seeded sample of at most ``latent_bank_size`` training images
    (``latent_bank = train``): a bank of the images the model learnt normality from, larger
    than the calibration set and disjoint from it."""
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:s.latent_bank_size].sort().values
    if s.latent_source != "pretrained":
        return encode_latent(model, images.images[pick], images.max_value, cfg, s, device, batch_size, backbone)
    return _pretrained_bank(model, images, pick, cfg, s, device, batch_size, backbone)


_last_pretrained: tuple[tuple[Any, ...], Tensor] | None = None  # (key, euclidean vectors)


def _pretrained_bank(model: nn.Module, images: ImageSet, pick: Tensor, cfg: Config, s: AnomalySettings,
                     device: torch.device | str, batch_size: int, backbone: nn.Module | None) -> Tensor:
    """The ``pretrained`` latent bank, kept for the next call on the same images: the selection
    and then the calibration both need it, and at a few hundred pixels a side its pass over the
    training images is a large part of a fit (it reads no autoencoder, so it cannot differ)."""
    global _last_pretrained
    from dataclasses import replace

    from aedetect.anomaly.maps.backbone import images_key, weights_key

    key = (images_key(images), tuple(pick.tolist()), s.pretrained_scale, weights_key())
    if _last_pretrained is None or _last_pretrained[0] != key:
        plain = replace(s, latent_metric="euclidean")
        _last_pretrained = (key, encode_latent(model, images.images[pick], images.max_value, cfg, plain, device,
                                               batch_size, backbone))
    v = _last_pretrained[1]
    return F.normalize(v, dim=1) if s.latent_metric == "cosine" else v


SHORTLIST_MARGIN = 16  # extra candidates the fast distance pass keeps for the exact one


def knn_distance(codes: Tensor, bank: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """Mean Euclidean distance to the ``k`` nearest bank codes (self excluded when scoring the bank).

    The distances that are averaged are computed pair by pair, never by cdist's matrix-product
    form: that form loses digits to cancellation (about 1e-4 relative) and its rounding depends
    on the other rows, so an image's score would depend on how many images are scored with it
    (a batch of ``aedetect score`` versus a whole set). Pair by pair is slow for long vectors
    (3 s for 500 x 900 vectors of 3,136 numbers), so there the fast form only shortlists the
    ``k`` + 16 nearest candidates and the exact distances are taken to those.
    """
    kk = min(k + int(exclude_self), bank.shape[0])
    if codes.shape[1] <= 256 or bank.shape[0] <= kk + SHORTLIST_MARGIN:
        d = torch.cdist(codes, bank, compute_mode="donot_use_mm_for_euclid_dist")
    else:
        idx = torch.cdist(codes, bank).topk(kk + SHORTLIST_MARGIN, dim=1, largest=False).indices
        d = torch.stack([(bank[idx[i]] - codes[i]).norm(dim=1) for i in range(codes.shape[0])]) \
            if codes.shape[0] else codes.new_zeros((0, idx.shape[1]))
    vals = d.topk(kk, dim=1, largest=False).values
    if exclude_self:
        vals = vals[:, 1:] if kk > 1 else vals
    return vals.mean(1)


def encode_bank(bank: Tensor) -> dict[str, Any]:
    """A float16 code bank as base64 text, so it fits the model file's JSON metadata."""
    arr = bank.numpy().astype(np.float16)
    return {"shape": list(arr.shape), "float16_base64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_bank(d: dict[str, Any]) -> Tensor:
    arr = np.frombuffer(base64.b64decode(d["float16_base64"]), dtype=np.float16).reshape(d["shape"])
    return torch.from_numpy(arr.astype(np.float32))
