"""Does the ``pretrained`` map's threshold hold on normal crops from elsewhere, and does a larger
bank help? Checked on the surfaces' calibration band only (the suite's test band is not read).

The suite's training crops (top half, bench/anomaly_suite.py) fill the bank; the calibration
band (rows 0.5-0.75 of the picture) is cut in two: crops of its left half calibrate the
threshold (1 % target), crops of its right half are new normal images, and the share of them
flagged is the false-positive rate. Each ``--banks`` size and ``--scores`` aggregation is one
fit (the autoencoder is trained for one epoch: the map does not use it).

    OMP_NUM_THREADS=1 python bench/pretrained_threshold_val.py --rows brick grass gravel moon \\
        --banks 10000 30000 --json bench/results/pretrained_threshold_val.json
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np
import torch

from aedetect import AnomalyDetector
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_image

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json
from anomaly_suite import CALIB_BAND, SURFACE_MODEL, surface_case


def halves(row: str, stride: int = 16, size: int = 64) -> tuple[ImageSet, ImageSet]:
    """Crops of the left and of the right half of the calibration band (no shared pixel)."""
    img = torch.from_numpy(texture_image(row))
    h, w = img.shape
    band = img[int(CALIB_BAND[0] * h):int(CALIB_BAND[1] * h)]

    def crops(part: torch.Tensor) -> ImageSet:
        p = part.unfold(0, size, stride).unfold(1, size, stride)
        return ImageSet(images=p.reshape(-1, 1, size, size).contiguous())
    return crops(band[:, :w // 2]), crops(band[:, w // 2:])


def one(row: str, bank: int, score: str, seed: int) -> dict[str, Any]:
    train, _, _ = surface_case(row, seed, argparse.Namespace(stride=16, max_crops=600))
    calib, new = halves(row)
    agg = {"score": "topk", "topk_percent": 5.0} if score == "top5" else {"score": score}
    det = AnomalyDetector(preset="small", epochs=1, seed=seed,
                          anomaly={"map": "pretrained", "pretrained_bank": bank, "smooth_sigma": 1.0, **agg},
                          overrides={**SURFACE_MODEL, "train": {"batch_size": 32}}).fit(train, calibration=calib)
    s_cal = det.score(calib, keep_images=False).scores
    res = det.score(new, keep_images=False)
    r = {"row": row, "bank": bank, "score": score, "seed": seed, "calib_images": len(calib), "new_images": len(new),
         "fpr": float(res.flags.mean()), "above_calib_max": float((res.scores > s_cal.max()).mean()),
         "median_ratio": float(np.median(res.scores) / np.median(s_cal))}
    print(r, flush=True)
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["brick", "grass"])
    ap.add_argument("--banks", nargs="+", type=int, default=[10000, 30000])
    ap.add_argument("--scores", nargs="+", default=["top5"], choices=["top5", "max", "mean"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = [one(row, bank, score, args.seed) for row in args.rows for bank in args.banks for score in args.scores]
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
