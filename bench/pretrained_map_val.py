"""Which pretrained features should ``anomaly.map = pretrained`` compare? Chosen here on the
surfaces' validation band, never on the suite's test band.

Each configuration is the map as aedetect.anomaly.backbone computes it (EfficientNet-Lite0's
ImageNet weights, the outputs after ``--taps`` blocks, 3x3-averaged and stacked on the finest
tap's grid, the image enlarged ``--scales`` times first, a seeded bank of 10,000 training
vectors, the distance to the nearest), with Gaussian smoothings and the image scores the
selection could give it (mean, top 1 %, top 5 %, max). Data as bench/texture_fixed_features.py: training
crops of the top half (the suite's surface rows, bench/anomaly_suite.py), validation crops of
the calibration band with the defects of aedetect.anomaly.defects (seed 200).

    OMP_NUM_THREADS=1 python bench/pretrained_map_val.py --rows grass gravel \\
        --configs 2,4,10@2 4,10@2 4,10@4 2,4@2 2,4@3 --json bench/results/pretrained_map_val.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch

from aedetect.anomaly import backbone
from aedetect.anomaly.defects import defect_test_set
from aedetect.anomaly.maps import image_score, smooth
from aedetect.anomaly.select import AGGREGATIONS
from aedetect.anomaly.metrics import image_auroc, pixel_metrics

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json
from anomaly_suite import CALIB_BAND, surface_case

SIGMAS = (0.0, 1.0, 2.0, 4.0)
BANK = 10_000


def evaluate(row: str, taps: tuple[int, ...], scale: int, seed: int) -> list[dict[str, Any]]:
    """One configuration on one row: a result per smoothing."""
    t0 = time.process_time()
    backbone.TAPS = taps  # read by LiteFeatures when built and run
    net = backbone.load_backbone()
    train, _, _ = surface_case(row, seed, argparse.Namespace(stride=16, max_crops=600))
    val = defect_test_set(row, 64, 16, rows=CALIB_BAND, seed=200 + seed)
    bank = backbone.build_pretrained_bank(net, train, scale, BANK, seed=seed)
    x = val.images.float() / val.max_value
    raw = torch.cat([backbone.pretrained_map(net, x[i:i + 64], bank, scale) for i in range(0, len(x), 64)])
    cpu = round(time.process_time() - t0, 1)
    out = []
    for sigma in SIGMAS:
        m = smooth(raw, sigma)
        px = pixel_metrics(val.masks[:, 0].numpy(), m[:, 0].numpy())  # type: ignore[index]
        r = {"row": row, "taps": list(taps), "scale": scale, "sigma": sigma, "seed": seed,
             "pixel_auroc": px["pixel_auroc"], "aupro": px["aupro"], "cpu_s": cpu}
        for how, pct in AGGREGATIONS:
            name = how if how != "topk" else f"top{pct:g}%"
            r[f"image_auroc_{name}"] = image_auroc(val.labels.numpy(), image_score(m, how, pct).numpy())  # type: ignore[union-attr]
        images = ", ".join(f"{k[12:]} {v:.4f}" for k, v in r.items() if k.startswith("image_auroc_"))
        print(f"{row} taps {taps} x{scale} sigma {sigma:g}: pixel AUROC {r['pixel_auroc']:.4f}, AUPRO "
              f"{r['aupro']:.4f}, image AUROC {images} ({cpu} CPU s)", flush=True)
        out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["grass", "gravel"])
    ap.add_argument("--configs", nargs="+", default=["2,4,10@2"], help="taps@scale, e.g. 2,4,10@2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    for row in args.rows:
        for c in args.configs:
            taps, scale = c.split("@")
            rows += evaluate(row, tuple(int(t) for t in taps.split(",")), int(scale), args.seed)
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
