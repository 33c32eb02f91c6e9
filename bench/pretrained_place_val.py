"""Does the ``pretrained`` map's threshold hold on normal crops from another place of the picture,
and which change of the map makes it hold? Validation geometry only: the suite's test band
(rows 0.75-1 of each picture, bench/anomaly_suite.py) is never read.

The suite trains on the top half, calibrates on the next quarter and tests on the bottom
quarter; its false-positive rate at a 1 % target was 33 % on brick, 7 % on grass and 16 % on the
moon (the bottom quarter differs: perspective, lighting, a crater field). Here the same shape is
moved up (``--geometry a``): the bank is built from rows 0-0.375, the threshold is set on rows
0.375-0.5 (stride 8), and the new normal crops are the suite's calibration band, rows 0.5-0.75,
where the defect set for the image and pixel AUROC is also cut (defects seed 200, as
bench/pretrained_map_val.py). ``--geometry b``: bank rows 0.125-0.5, threshold rows 0-0.125,
the same new crops.

Variants (each is a change of the bank, of the image before the network, or of the score):

  base      the map as fitted (bank of training crops at the auto scale, top 5 %)
  scales    the bank also holds the training crops enlarged and shrunk (``--factors``)
  std       each crop is standardised (mean 0.5, standard deviation 0.2) before the network
  relative  image score = top 5 % minus the map's median (a level shared by the whole crop
            cancels)
  crossfit  the threshold is set on the calibration crops' scores pooled with the training
            crops' cross-fitted ones: each training crop scored against a bank of the other
            ``--folds`` contiguous folds only (crops are in picture order), so how new a
            place looks is in the calibration
  and any '+' join of them (``scales+relative``).

    OMP_NUM_THREADS=1 python bench/pretrained_place_val.py --rows brick grass moon \\
        --variants base scales std relative --json bench/results/pretrained_place_val.json
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aedetect.anomaly.backbone import load_backbone, scale_of
from aedetect.anomaly.defects import defect_test_set
from aedetect.anomaly.featuremap import nearest_distance, sample_vectors
from aedetect.anomaly.maps import image_score, smooth
from aedetect.anomaly.metrics import image_auroc, pixel_metrics
from aedetect.anomaly.threshold import threshold_at_fpr
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json

# (bank, threshold, new normal crops) bands of the picture's height; "b" calibrates above the
# bank instead of between it and the new crops, a second, different shift.
GEOMETRIES = {"a": ((0.0, 0.375), (0.375, 0.5), (0.5, 0.75)), "b": ((0.125, 0.5), (0.0, 0.125), (0.5, 0.75))}


def standardise(x: Tensor) -> Tensor:
    """Each image to mean 0.5 and standard deviation 0.2 (clipped to [0, 1])."""
    m = x.mean((1, 2, 3), keepdim=True)
    s = x.std((1, 2, 3), keepdim=True).clamp_min(1e-3)
    return ((x - m) / s * 0.2 + 0.5).clamp(0, 1)


def features(net: Any, x: Tensor, scale: float, std: bool) -> Tensor:
    if std:
        x = standardise(x)
    if scale != 1:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    return net(x, 1)


def bank_of(net: Any, train: ImageSet, scale: int, factors: list[float], std: bool, size: int, seed: int) -> Tensor:
    banks = []
    per = size // len(factors)
    for f in factors:
        banks.append(sample_vectors(lambda xb: features(net, xb.float() / 255, scale * f, std), train, per, "cpu", 64, seed))
    return torch.cat(banks)


def maps_of(net: Any, x: Tensor, bank: Tensor, scale: int, std: bool) -> Tensor:
    out = []
    for i in range(0, x.shape[0], 64):
        xb = x[i:i + 64].float() / 255
        d = nearest_distance(features(net, xb, scale, std), bank)
        out.append(smooth(F.interpolate(d, size=tuple(xb.shape[-2:]), mode="bilinear", align_corners=False), 1.0))
    return torch.cat(out)


def crossfit_scores(net: Any, train: Tensor, scale: int, std: bool, size: int, folds: int, seed: int,
                    relative: bool) -> np.ndarray:
    """Scores of the training crops, each against a bank of the other folds' crops only
    (``folds`` contiguous folds in the crops' order, which is their place in the picture)."""
    g = torch.Generator().manual_seed(seed)
    per = max(1, size // len(train))
    kept = []
    for i in range(0, len(train), 64):
        f = features(net, train[i:i + 64].float() / 255, scale, std)
        v = f.permute(0, 2, 3, 1).reshape(f.shape[0], -1, f.shape[1])
        pick = torch.stack([torch.randperm(v.shape[1], generator=g)[:per] for _ in range(v.shape[0])])
        kept.append(torch.gather(v, 1, pick[..., None].expand(-1, -1, v.shape[2])))
    kept_t = torch.cat(kept)  # (N, per, C)
    fold = torch.arange(len(train)) * folds // len(train)
    out = np.empty(len(train))
    for k in range(folds):
        bank = kept_t[fold != k].reshape(-1, kept_t.shape[2])
        idx = torch.nonzero(fold == k).ravel()
        out[idx.numpy()] = score(maps_of(net, train[idx], bank, scale, std), relative)
    return out


def score(m: Tensor, relative: bool) -> np.ndarray:
    s = image_score(m, "topk", 5.0)
    if relative:
        s = s - m.flatten(1).median(1).values
    return s.numpy()


def one(row: str, variant: str, args: argparse.Namespace, net: Any) -> dict[str, Any]:
    parts = set(variant.split("+"))
    std, relative = "std" in parts, "relative" in parts
    factors = [1.0, *args.factors] if "scales" in parts else [1.0]
    v_train, v_calib, v_new = GEOMETRIES[args.geometry]
    train = texture_crops(row, 64, 16, rows=v_train)
    if len(train) > 600:
        train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:600]]
    calib = texture_crops(row, 64, 8, rows=v_calib)
    new = texture_crops(row, 64, 16, rows=v_new)
    defects = defect_test_set(row, 64, 16, rows=v_new, seed=200)
    scale = scale_of("auto", (64, 64))
    bank = bank_of(net, ImageSet(images=train), scale, factors, std, args.bank, args.seed)
    s_cal = score(maps_of(net, calib, bank, scale, std), relative)
    s_new = score(maps_of(net, new, bank, scale, std), relative)
    m_def = maps_of(net, defects.images, bank, scale, std)
    s_def = score(m_def, relative)
    t = threshold_at_fpr(s_cal, 0.01)
    if "crossfit" in parts:
        s_cv = crossfit_scores(net, train, scale, std, args.bank, args.folds, args.seed, relative)
        t = threshold_at_fpr(np.concatenate([s_cal, s_cv]), 0.01)
    labels = defects.labels.numpy()
    pix = pixel_metrics(defects.masks[:, 0].numpy(), m_def[:, 0].numpy())
    r = {"row": row, "variant": variant, "geometry": args.geometry, "seed": args.seed, "calib": len(calib), "new": len(new),
         "fpr_new": float((s_new > t).mean()), "median_ratio": float(np.median(s_new) / np.median(s_cal)),
         "fpr_defect_normals": float((s_def[labels == 0] > t).mean()),
         "image_auroc": image_auroc(labels, s_def), "recall_at_t": float((s_def[labels == 1] > t).mean()),
         **{k: pix[k] for k in ("pixel_auroc", "aupro") if k in pix}}
    med = float(np.median(s_cal))
    for m in args.margins:  # the threshold moved up by m x its distance from the median normal score
        tm = t + m * (t - med)
        r[f"fpr_new_m{m:g}"] = float((s_new > tm).mean())
        r[f"recall_m{m:g}"] = float((s_def[labels == 1] > tm).mean())
    if args.save_scores:
        os.makedirs(args.save_scores, exist_ok=True)
        np.savez(os.path.join(args.save_scores, f"{row}-{variant}-{args.geometry}.npz"), calib=s_cal, new=s_new,
                 defects=s_def, labels=labels)
    print(r, flush=True)
    return r


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["brick", "grass", "gravel", "cell", "immunohistochemistry", "moon"])
    ap.add_argument("--variants", nargs="+", default=["base", "scales", "std", "relative"])
    ap.add_argument("--factors", nargs="+", type=float, default=[0.8, 1.25])
    ap.add_argument("--bank", type=int, default=10000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--margins", nargs="+", type=float, default=[0.25, 0.5, 1.0])
    ap.add_argument("--geometry", choices=sorted(GEOMETRIES), default="a")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--save-scores", default=None, help="a folder for each run's scores (.npz)")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    net = load_backbone()
    rows = [one(row, v, args, net) for row in args.rows for v in args.variants]
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
