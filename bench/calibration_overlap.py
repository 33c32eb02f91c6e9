"""What a calibration split that overlaps the training crops does to the threshold (issue 12).

One model per texture and seed, trained on 85 % of the 64x64 crops (stride 16) of the top half
of a scikit-image picture; the same model is then calibrated twice, with the same fixed scoring
(no selection, so only the calibration images differ):

  random   the other 15 % of those crops: held out, but each shares most of its pixels with
           training crops (what a random split of a folder of overlapping crops gives)
  band     crops of the next quarter of the picture, which share no pixel with training crops
           (``fit --calibration DIR``)

and both thresholds are applied to the normal crops of the bottom quarter, which neither saw.
Reported: the false-positive rate there against the 1 % target, and what
aedetect.anomaly.overlap found in each calibration set.

    OMP_NUM_THREADS=1 python bench/calibration_overlap.py --textures grass gravel brick --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from aedetect.anomaly.head import AnomalyHead
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops
from aedetect.errors import TrainingError

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json
from anomaly_suite import detector  # the suite's surface model and training settings


def run(texture: str, seed: int, epochs: int, scoring: dict[str, object]) -> dict[str, object]:
    crops = texture_crops(texture, 64, 16, rows=(0.0, 0.5))
    perm = torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed))
    n_cal = int(0.15 * len(crops))
    train, held = ImageSet(images=crops[perm[n_cal:]]), ImageSet(images=crops[perm[:n_cal]])
    band = ImageSet(images=texture_crops(texture, 64, 16, rows=(0.5, 0.75)))
    test = ImageSet(images=texture_crops(texture, 64, 16, rows=(0.75, 1.0)))
    det = detector(texture, seed, epochs, (64, 64), {"select": "none", **scoring}).fit(train, calibration=band)
    out: dict[str, object] = {"texture": texture, "seed": seed, "train": len(train), "test_normals": len(test)}
    scores = det.anomaly_score(test)
    for name, cal_set in (("band", band), ("random", held)):
        cal = det.calibration_ if name == "band" else AnomalyHead().calibrate(
            det.model_, cal_set, det.config_, torch.device(det.device), train=train)
        ov = cal.get("overlap_with_training") or {}
        out[name] = {"calib_images": len(cal_set), "threshold": cal["threshold"],
                     "fpr_on_new_normals": float((scores > cal["threshold"]).mean()),
                     "overlapping_images": f"{ov.get('images')} of {ov.get('of')}"}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--textures", nargs="+", default=["grass", "gravel", "brick"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--map", default="features", help="the fixed anomaly.map (features: the one the suite's "
                                                     "first run chose on grass and gravel)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    scoring = {"map": args.map, "score": "mean", "smooth_sigma": 1.0}
    rows = []
    for t in args.textures:
        for s in args.seeds:
            try:
                r = run(t, s, args.epochs, scoring)
            except TrainingError as e:  # collapsed twice: no model to calibrate; counted, not scored
                print(json.dumps({"texture": t, "seed": s, "collapsed": str(e)}), flush=True)
                continue
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("\n| texture | seeds | FPR on new normals, random-split calibration | FPR, calibration on another band | "
          "target |\n|---|---|---|---|---|")
    for t in args.textures:
        rs = [r for r in rows if r["texture"] == t]
        if not rs:
            continue
        cell = {k: np.array([r[k]["fpr_on_new_normals"] for r in rs]) * 100 for k in ("random", "band")}  # type: ignore[index]
        print(f"| {t} | {len(rs)} | {cell['random'].mean():.1f} % ± {cell['random'].std():.1f} | "
              f"{cell['band'].mean():.1f} % ± {cell['band'].std():.1f} | 1 % |")
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
