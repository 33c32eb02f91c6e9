"""Which latent vector the feature kNN should use, checked on validation data (issue 12).

One-class MNIST's *training* split only (bench/_mnist_val.py; the test split is not read). For
digit k the detector is fitted as the suite fits it (label-free selection on), and then the
feature kNN part of its score is rebuilt with other vectors: the encoder level, the grid the
feature map is averaged to, the number of neighbours ``k``. Each variant is judged by the real
validation AUROC (held-out images of k against images of the other nine digits) of the kNN
alone and of the chosen reconstruction part plus it (weights 1 and 3, each part scaled by its
median on normal images, as the selection combines them). The current vector (deepest level,
7x7, k = 5, cosine) is the row ``L-1 g7 k5``.

    OMP_NUM_THREADS=1 AEDETECT_DATA_ROOT=/work/shared/data python bench/latent_vector_val.py \
        --digits 0 1 2 3 4 5 6 7 8 9 --train 4800 --json bench/results/latent_vector_val_mnist.json
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aedetect.anomaly.latent import knn_distance
from aedetect.anomaly.metrics import image_auroc
from aedetect.data.imageset import ImageSet, scale_to_float

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import training_split_for, validation_case, validation_parser
from _results import print_means, write_json
from anomaly_suite import detector

LEVELS = (0, -1)
GRIDS = (14, 7, 5, 4, 3)  # 14: level 0 unpooled (a grid above a level's size is skipped)
KS = (1, 3, 5, 10, 20)
WEIGHTS = (1.0, 3.0)
SCALE_IMAGES = 512  # bank images whose leave-one-out distance sets the kNN part's scale


@torch.no_grad()
def level_maps(model: torch.nn.Module, images: ImageSet, scaling: str, batch: int = 256) -> list[torch.Tensor]:
    """Every encoder level's feature map of ``images`` (one list entry per level)."""
    model.eval()
    out: list[list[torch.Tensor]] = []
    for i in range(0, len(images), batch):
        x = scale_to_float(images.images[i:i + batch], images.max_value, scaling)
        _, _, skips = model.forward_parts(x)  # type: ignore[operator]
        if not out:
            out = [[] for _ in skips]
        for j, s in enumerate(skips):
            out[j].append(s.float())
    return [torch.cat(o) for o in out]


def vectors(maps: list[torch.Tensor], level: int | str, grid: int) -> torch.Tensor:
    """Unit-length vectors of one level (or ``"both"``: each level's unit vector, concatenated)."""
    if level == "both":
        return F.normalize(torch.cat([vectors(maps, j, grid) for j in range(len(maps))], 1), dim=1)
    return F.normalize(F.adaptive_avg_pool2d(maps[level], grid).flatten(1), dim=1)  # type: ignore[index]


def digit_row(everything: ImageSet, k: int, seed: int, n_train: int, n_val: int, epochs: int) -> dict[str, Any]:
    train, normals, anomalies = validation_case(everything, k, seed, n_train, n_val)
    val = ImageSet(images=torch.cat([normals.images, anomalies.images]))
    labels = np.r_[np.zeros(len(normals)), np.ones(len(anomalies))]
    det = detector("mnist", seed, epochs, (28, 28)).fit(train)
    sel = det.calibration_["selection"]
    recon_det = copy.deepcopy(det)
    recon_det.calibration_["settings"] = {**det.calibration_["settings"], "latent": "none", "recon_weight": 1.0}
    recon = recon_det.anomaly_score(val)
    recon_train = recon_det.anomaly_score(train.subset(torch.arange(SCALE_IMAGES)))
    recon = recon / np.median(recon_train)
    scaling = det.config_.data.scaling
    bank_maps, val_maps = level_maps(det.model_, train, scaling), level_maps(det.model_, val, scaling)
    row: dict[str, Any] = {"digit": k, "seed": seed, "chosen": sel["chosen"],
                           "detector": image_auroc(labels, det.anomaly_score(val)), "recon": image_auroc(labels, recon)}
    for level in (*LEVELS, "both"):
        for grid in GRIDS:
            if grid > min(m.shape[-1] for m in (bank_maps if level == "both" else [bank_maps[level]])):  # type: ignore[index]
                continue
            bank, vecs = vectors(bank_maps, level, grid), vectors(val_maps, level, grid)
            for kk in KS:
                lat = knn_distance(vecs, bank, kk).numpy()
                lat = lat / np.median(knn_distance(bank[:SCALE_IMAGES], bank, kk, exclude_self=True).numpy())
                name = f"L{level} g{grid} k{kk}"
                row[name] = {"alone": image_auroc(labels, lat),
                             **{f"w{w:g}": image_auroc(labels, recon + w * lat) for w in WEIGHTS}}
    return row


def main(argv: list[str] | None = None) -> int:
    args = validation_parser(__doc__, train=4800, val=1000, epochs=5, digits=[4, 8]).parse_args(argv)
    everything = training_split_for(args)
    rows = []
    for k in args.digits:
        rows.append(digit_row(everything, k, args.seed, args.train, args.val, args.epochs))
        r = rows[-1]
        best = max((n for n in r if n.startswith("L")), key=lambda n: max(r[n].values()))
        print(f"digit {k}: detector {100 * r['detector']:.2f} ({r['chosen']}), recon {100 * r['recon']:.2f}, "
              f"L-1 g7 k5 w3 {100 * r['L-1 g7 k5']['w3']:.2f}, best {best} {100 * max(r[best].values()):.2f}",
              flush=True)
        if args.json:
            write_json(args.json, {"args": vars(args), "rows": rows})
    names = [n for n in rows[0] if n.startswith("L")]
    means = {"detector (selection's pick)": float(np.mean([r["detector"] for r in rows]))}
    for n in names:
        for part in rows[0][n]:
            means[f"{n} {part}"] = float(np.mean([r[n][part] for r in rows]))
    top = dict(sorted(means.items(), key=lambda kv: -kv[1])[:25])
    print_means("vector (top 25 by mean)", "mean validation AUROC", top)
    print_means("current vector", "mean validation AUROC", {m: v for m, v in means.items() if m.startswith("L-1 g7 k5")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
