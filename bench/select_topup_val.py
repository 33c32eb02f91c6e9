"""Does topping up the selection's held-out normals with the early-stopping split pick better
scoring? Judged on real validation anomalies (issue 12; MNIST's *training* split only, the
test split is not read).

The regime of the suite's 8x8 digits row, rebuilt where there are enough images to judge: for
digit k, --train training images of k (121, as that row gives ``fit``) train the suite's
object model for --epochs (30, as that row), through ``AnomalyDetector.fit`` and its own
splits (10 % early stopping, 15 % of the rest calibration: 16 held-out normals); --val other
training images of k and --val training images of the other digits judge the pick. Each
model is fitted twice with the same seed, ``anomaly.select_top_up`` = false (17 normals) and
true (16 + the 12 of the early-stopping split); the training is the same (its loss history is
checked), only the selection differs.

    OMP_NUM_THREADS=1 AEDETECT_DATA_ROOT=/work/shared/data python bench/select_topup_val.py \
        --digits 0 1 2 3 4 5 6 7 8 9 --seeds 0 1 2 --json bench/results/select_topup_val_mnist.json
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import torch

from aedetect.anomaly.metrics import image_auroc
from aedetect.data.imageset import ImageSet

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import training_split_for, validation_case, validation_parser
from _results import print_means, write_json
from anomaly_suite import detector


def main(argv: list[str] | None = None) -> int:
    args = validation_parser(__doc__, train=121, val=500, epochs=30, digits=list(range(10)), seeds=True).parse_args(argv)
    everything = training_split_for(args)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        for k in args.digits:
            train, normals, anomalies = validation_case(everything, k, seed, args.train, args.val)
            val = ImageSet(images=torch.cat([normals.images, anomalies.images]))
            labels = np.r_[np.zeros(len(normals)), np.ones(len(anomalies))]
            row: dict[str, Any] = {"digit": k, "seed": seed}
            losses = []
            for name, on in (("calibration only", False), ("topped up", True)):
                det = detector("mnist", seed, args.epochs, (28, 28), {"select_top_up": on}).fit(train)
                rec = det.calibration_["selection"]
                losses.append([h.get("val_loss") for h in det.history_])
                row[name] = {"val_auroc": image_auroc(labels, det.anomaly_score(val)), "chosen": rec["chosen"],
                             "normals": rec["normal_images"], "draws": rec["draws"]}
            if losses[0] != losses[1]:
                raise SystemExit(f"digit {k} seed {seed}: the two fits trained differently; the comparison is void")
            rows.append(row)
            print({n: (round(100 * v["val_auroc"], 2), v["normals"], v["chosen"]) if isinstance(v, dict) else v
                   for n, v in row.items()}, flush=True)
            if args.json:
                write_json(args.json, {"args": vars(args), "rows": rows})
    print_means("held-out normals", "mean real validation AUROC",
                {n: float(np.mean([r[n]["val_auroc"] for r in rows])) for n in ("calibration only", "topped up")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
