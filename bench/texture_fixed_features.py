"""Would features that are not learnt from the texture itself localise its defects better?
(issue 12's texture target: pixel AUROC >= 0.95, AUPRO >= 0.85 on an unseen defect family.)

PatchCore-style methods reach it with an ImageNet network, which this offline machine cannot
download. Two stand-ins that need no download are tried here, each as the ``features`` map
does it (every location's vector, its distance to the nearest of a bank of at most 30,000
training vectors, smoothed with sigma 2):

* ``denoiser``: the encoder of the shipped ``pretrained:gray`` denoiser (trained on the 400
  natural images of Train400), at a level and an averaging window (``--configs``);
* ``gabor``: a fixed Gabor filter bank (4 orientations x even/odd x ``--scales``) plus the local
  mean at each scale, their magnitudes averaged over ``--pools`` windows, standardised on the
  training crops.

Data as the suite's surface rows: training crops of the top half (bench/anomaly_suite.py), and
the validation set of bench/select_objective_val.py (defects in the calibration band, seed
200), so the suite's test band is not read.

    OMP_NUM_THREADS=1 python bench/texture_fixed_features.py grass --extractor denoiser --configs 0,3 1,3 1,5 2,3
    OMP_NUM_THREADS=1 python bench/texture_fixed_features.py grass --extractor gabor --pools 7 11
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import Tensor

from aedetect.anomaly.defects import defect_test_set
from aedetect.anomaly.featuremap import pool_features
from aedetect.anomaly.metrics import image_auroc, pixel_metrics
from aedetect.data.imageset import ImageSet, scale_to_float

sys.path.insert(0, os.path.dirname(__file__))
from anomaly_suite import CALIB_BAND, surface_case

BANK = 30_000
SMOOTH = 2.0


def gray(images: ImageSet) -> Tensor:
    """The crops in [0, 1], colour averaged to one channel (the denoiser is a gray model)."""
    x = scale_to_float(images.images, images.max_value, "unit")
    return x.mean(1, keepdim=True) if x.shape[1] == 3 else x


def denoiser_extractor(level: int, pool: int) -> Callable[[Tensor], Tensor]:
    """Level ``level`` of the pretrained:gray encoder, averaged over ``pool``, at that level's
    resolution (1/2**level of the padded input); its noise-level input is 0 (clean images)."""
    from aedetect.core.modelfile import load_model

    model = load_model("pretrained:gray").model.eval()

    @torch.no_grad()
    def run(x: Tensor) -> Tensor:
        h = model._pad(torch.cat([x, torch.zeros_like(x)], 1))
        for j, lvl in enumerate(model.encoder):
            h, skip, _ = lvl(h)
            if j == level:
                return pool_features(skip, pool)
        raise ValueError(f"level {level}: the denoiser has {len(model.encoder)} levels")
    return run


def gabor_bank(scales: list[float]) -> list[Tensor]:
    """Zero-mean even and odd Gabor filters, 4 orientations, wavelength 4 sigma, per scale."""
    out = []
    for s in scales:
        r = int(math.ceil(3 * s))
        y, x = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")
        g = torch.exp(-(x ** 2 + y ** 2) / (2 * s * s))
        for k in range(4):
            u = x * math.cos(k * math.pi / 4) + y * math.sin(k * math.pi / 4)
            for phase in (0.0, math.pi / 2):
                f = g * torch.cos(2 * math.pi * u / (4 * s) + phase)
                f = f - f.mean() if phase == 0.0 else f
                out.append(f / f.abs().sum())
    return out


def gabor_extractor(scales: list[float], pool: int) -> Callable[[Tensor], Tensor]:
    filters = gabor_bank(scales)

    @torch.no_grad()
    def run(x: Tensor) -> Tensor:
        parts = []
        for f in filters:
            p = f.shape[-1] // 2
            parts.append(F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), f[None, None]).abs())
        for s in scales:
            w = int(4 * s) + 1
            parts.append(F.avg_pool2d(F.pad(x, (w // 2,) * 4, mode="reflect"), w, 1))
        e = torch.cat(parts, 1)
        return F.avg_pool2d(F.pad(e, (pool // 2,) * 4, mode="reflect"), pool, 1)
    return run


def evaluate(name: str, extract: Callable[[Tensor], Tensor], train: Tensor, val: ImageSet,
             level: int = 0) -> dict[str, float]:
    """Pixel and image metrics of the nearest-bank-vector distance map; ``level``: the features
    are at 1/2**level of the input, so the distances are upsampled (as featuremap.py does)."""
    t0 = time.process_time()
    ft = torch.cat([extract(train[i:i + 64]) for i in range(0, len(train), 64)])
    mu, sd = ft.mean((0, 2, 3), keepdim=True), ft.std((0, 2, 3), keepdim=True) + 1e-6
    v = ((ft - mu) / sd).permute(0, 2, 3, 1).reshape(-1, ft.shape[1])
    bank = v[torch.randperm(len(v), generator=torch.Generator().manual_seed(0))[:BANK]]
    x = gray(val)
    fv = (torch.cat([extract(x[i:i + 32]) for i in range(0, len(x), 32)]) - mu) / sd
    n, c, h, w = fv.shape
    q = fv.permute(0, 2, 3, 1).reshape(-1, c)
    d = torch.cat([torch.cdist(q[i:i + 8192], bank).min(1).values for i in range(0, len(q), 8192)])
    d = F.interpolate(d.reshape(n, 1, h, w), size=(h << level, w << level), mode="bilinear",
                      align_corners=False)[:, 0, :x.shape[-2], :x.shape[-1]]
    maps = np.stack([gaussian_filter(m, SMOOTH) for m in d.numpy()])
    px = pixel_metrics(val.masks[:, 0].numpy(), maps)  # type: ignore[index]
    row = {"pixel_auroc": px["pixel_auroc"], "aupro": px["aupro"],
           "image_auroc_max": image_auroc(val.labels.numpy(), maps.reshape(n, -1).max(1)),  # type: ignore[union-attr]
           "cpu_s": round(time.process_time() - t0, 1)}
    print(f"{name}: pixel AUROC {row['pixel_auroc']:.4f}, AUPRO {row['aupro']:.4f}, image AUROC (max) "
          f"{row['image_auroc_max']:.4f} ({row['cpu_s']} CPU s)", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("texture")
    ap.add_argument("--extractor", choices=("denoiser", "gabor"), required=True)
    ap.add_argument("--configs", nargs="+", default=["1,5"], help="denoiser: level,pool pairs")
    ap.add_argument("--scales", nargs="+", type=float, default=[1.0, 2.0, 4.0], help="gabor: filter scales")
    ap.add_argument("--pools", nargs="+", type=int, default=[11], help="gabor: averaging windows")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    train_set, _, _ = surface_case(args.texture, 0, argparse.Namespace(stride=16, max_crops=600))
    val = defect_test_set(args.texture, 64, 16, rows=CALIB_BAND, seed=200)
    train = gray(train_set)
    print(f"{args.texture}: {len(train)} training crops, {len(val)} validation crops", flush=True)
    if args.extractor == "denoiser":
        for c in args.configs:
            level, pool = map(int, c.split(","))
            evaluate(f"denoiser level {level} pool {pool}", denoiser_extractor(level, pool), train, val, level)
    else:
        for pool in args.pools:
            evaluate(f"gabor scales {args.scales} pool {pool}", gabor_extractor(args.scales, pool), train, val)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
