"""ImageNet features first on one-class MNIST's *training* split (aedetect.anomaly.selection.plan): the
suite's object model fitted as the suite fits it, with the default plan (``autoencoder = auto``,
no time limit: the decision by ``features_enough`` alone) and with the autoencoder always
trained (``on``, the behaviour before), on the same images; validation AUROC on held-out
training images of the digit against training images of the other nine.

    OMP_NUM_THREADS=2 python bench/plan_val_mnist.py --digits 3 7 --train 1000 --val 1000 --epochs 5

One JSON line per digit and mode: AUROC, the features-first objective, whether the autoencoder
trained, what was chosen, the fit's CPU seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import training_split_for, validation_case, validation_parser  # noqa: E402

from aedetect import AnomalyDetector  # noqa: E402
from aedetect.anomaly.evaluate.metrics import image_auroc  # noqa: E402
from aedetect.data.imageset import ImageSet  # noqa: E402

OBJECT_MODEL = {"model": {"widths": [32, 64], "bottleneck": "dense", "latent_dim": 32, "norm": "batch"}}


def main() -> int:
    ap = validation_parser(__doc__, train=1000, val=1000, epochs=5, digits=[3, 7])
    ap.add_argument("--modes", nargs="+", default=["auto", "on"], choices=["auto", "on", "off"])
    args = ap.parse_args()
    everything = training_split_for(args)
    for k in args.digits:
        train, normals, anomalies = validation_case(everything, k, args.seed, args.train, args.val)
        test = ImageSet(images=torch.cat([normals.images, anomalies.images]))
        y = np.r_[np.zeros(len(normals)), np.ones(len(anomalies))]
        for mode in args.modes:
            det = AnomalyDetector(preset="small", epochs=args.epochs, seed=args.seed, size=(28, 28),
                                  anomaly={"autoencoder": mode},
                                  overrides={**OBJECT_MODEL, "train": {"batch_size": 64, "lr": 2e-3, "patience": 100,
                                                                       "grid_every": 0, "time_budget": 0}})
            c0 = time.process_time()
            det.fit(train)
            sel = det.calibration_.get("selection") or {}
            first = sel.get("features_first") or ({"objective": sel.get("chosen_auroc")}
                                                  if not sel.get("autoencoder_trained", True) else {})
            print(json.dumps({"digit": k, "mode": mode, "seed": args.seed,
                              "auroc": round(image_auroc(y, det.score(test, keep_images=False).scores), 4),
                              "features_objective": first.get("objective"),
                              "autoencoder": det.config_.model.arch != "none", "chosen": sel.get("chosen"),
                              "fit_cpu_s": round(time.process_time() - c0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
