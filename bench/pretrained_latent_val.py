"""How should the ImageNet latent vector (``latent_source = pretrained``) see a digit? Checked
on one-class MNIST's training split only (the test split is not read).

For digit k (seed 0): --train training images of k fill the bank; --val other training images
of k (normal) and --val training images of the other digits (anomalous) are scored by the mean
cosine distance to their 5 nearest bank vectors. A vector is EfficientNet-Lite0's stacked
features (aedetect.anomaly.backbone) of the image enlarged ``scale`` times, averaged on a
``grid`` x ``grid`` grid; the raw-pixel kNN is printed beside it.

    OMP_NUM_THREADS=1 AEDETECT_DATA_ROOT=/work/shared/data python bench/pretrained_latent_val.py \\
        --digits 8 7 4 --configs 4@1 2@2 4@2 7@2 4@4 --json bench/results/pretrained_latent_val.json
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aedetect.anomaly.backbone import load_backbone
from aedetect.anomaly.latent import knn_distance
from aedetect.anomaly.metrics import image_auroc

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import training_split_for, validation_case, validation_parser
from _results import write_json


@torch.no_grad()
def vectors(net: torch.nn.Module, images: Tensor, grid: int, scale: int) -> Tensor:
    out = [F.adaptive_avg_pool2d(net(images[i:i + 128].float() / 255, scale), grid).flatten(1)
           for i in range(0, len(images), 128)]
    return F.normalize(torch.cat(out), dim=1)


def main(argv: list[str] | None = None) -> int:
    ap = validation_parser(__doc__, train=1000, val=1000, epochs=0, digits=[8, 7, 4])
    ap.add_argument("--configs", nargs="+", default=["2@2"], help="grid@scale")
    args = ap.parse_args(argv)
    everything = training_split_for(args)
    net = load_backbone()
    rows = []
    for k in args.digits:
        train, normals, anomalies = validation_case(everything, k, args.seed, args.train, args.val)
        query = torch.cat([normals.images, anomalies.images])
        labels = np.r_[np.zeros(len(normals)), np.ones(len(anomalies))]
        pixels = image_auroc(labels, knn_distance(query.float().flatten(1) / 255, train.images.float().flatten(1) / 255, 5).numpy())
        for c in args.configs:
            grid, scale = (int(x) for x in c.split("@"))
            t0 = time.process_time()
            d = knn_distance(vectors(net, query, grid, scale), vectors(net, train.images, grid, scale), 5)
            r = {"digit": k, "seed": args.seed, "grid": grid, "scale": scale, "auroc": image_auroc(labels, d.numpy()),
                 "pixels_knn_auroc": pixels, "cpu_s": round(time.process_time() - t0, 1)}
            print(r, flush=True)
            rows.append(r)
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
