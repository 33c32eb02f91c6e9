"""Which selection objective, checked on validation data (issue 12).

Objects: one-class MNIST's *training* split only (the test split is not read): for digit k, a
seeded sample of --train training images of k trains the detector; the validation set is --val
other training images of k (normal) and --val training images of the other nine digits
(anomalous). Surfaces (--textures): the suite's training crops (top half) and calibration
crops (next quarter); the validation set is crops of that calibration band, half with one
defect of aedetect.anomaly.defects (seed 200; the suite tests on the bottom quarter, seeds
100-102), so image and pixel AUROC are measured without the test band. Each detector is
fitted twice, with ``anomaly.select_objective`` = ``image`` and ``image+pixel`` (same seed,
same images), and each is scored on the validation set. ``--variants`` adds other ways of
selecting: ``auto`` (the default objective) and ``auto-no-pixels`` (the same without the
raw-pixel kNN candidates, ``latent_source = pixels``), ``auto-bank-6000`` (a latent kNN bank
of up to 6,000 training images instead of 2,000), ``auto-median`` (the families' AUROCs
combined by their median), ``auto-shape-families`` (only the four families that change a shape,
cutpaste, elastic, affine, mirror: ``auto`` on objects before cutpaste was left out), ``auto-images-512`` / ``auto-images-1000`` (that many held-out
normals instead of 256, with a 600 s budget so that no candidate is skipped), ``auto-draws-4``
(four synthetic anomalies per held-out image and family instead of one), ``auto-weights-10``
(latent weights 1, 3 and 10 among the candidates instead of 1 and 3), ``auto-no-pretrained``
(without the ImageNet candidates, ``select_pretrained = off``: ``auto`` before they were added),
so that a change to the candidates or the rule is judged on validation data too.

    OMP_NUM_THREADS=1 AEDETECT_DATA_ROOT=/work/shared/data python bench/select_objective_val.py --digits 3 4 6
    OMP_NUM_THREADS=1 python bench/select_objective_val.py --digits --textures brick grass gravel cell immunohistochemistry moon
    OMP_NUM_THREADS=1 python bench/select_objective_val.py --digits --textures grass moon --variants auto auto-no-pixels
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Iterator

import numpy as np
import torch

from aedetect.anomaly.defects import defect_test_set
from aedetect.anomaly.metrics import image_auroc, pixel_metrics
from aedetect.data.imageset import ImageSet

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import mnist_training_split, validation_case
from anomaly_suite import detector, surface_case


# variant -> the Config.anomaly keys it sets
VARIANTS: dict[str, dict[str, Any]] = {
    "image": {"select_objective": "image"}, "image+pixel": {"select_objective": "image+pixel"},
    "auto": {}, "auto-no-pixels": {"select_sources": ["code", "features"]},
    "auto-bank-6000": {"select": "on", "latent_bank_size": 6000},
    "auto-median": {"select_combine": "median"},
    "auto-shape-families": {"select_families": ["cutpaste", "elastic", "affine", "mirror"]},
    "auto-images-512": {"select_images": 512, "select_budget": 600.0},
    "auto-images-1000": {"select_images": 1000, "select_budget": 600.0},
    "auto-draws-4": {"select_draws": 4, "select_budget": 600.0},
    "auto-weights-10": {}, "auto-no-pretrained": {"select_pretrained": "off"}}
# variant -> latent weights the selection's candidates use instead of select.LATENT_WEIGHTS
WEIGHTS: dict[str, tuple[float, ...]] = {"auto-weights-10": (1.0, 3.0, 10.0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", nargs="*", type=int, default=[3, 4, 6])
    ap.add_argument("--textures", nargs="*", default=[], help="surface rows of the suite to check too")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=["image", "image+pixel"], choices=list(VARIANTS))
    ap.add_argument("--data-root", default=os.environ.get("AEDETECT_DATA_ROOT"))
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    everything = mnist_training_split(args.data_root) if args.digits else None
    rows: list[dict[str, Any]] = []
    for k in args.digits:
        train, normals, anomalies = validation_case(everything, k, args.seed, args.train, args.val)  # type: ignore[arg-type]
        val = ImageSet(images=torch.cat([normals.images, anomalies.images]))
        labels = np.r_[np.zeros(len(normals)), np.ones(len(anomalies))]
        row = {"digit": k, "seed": args.seed}
        for objective in args.variants:
            with latent_weights(WEIGHTS.get(objective)):
                det = detector("mnist", args.seed, args.epochs, (28, 28), VARIANTS[objective]).fit(train)
            row[objective] = {"val_auroc": image_auroc(labels, det.anomaly_score(val)),
                              "chosen": det.calibration_["selection"]["chosen"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for t in args.textures:
        rows.append(surface_row(t, args.seed, args.variants))
        print(json.dumps(rows[-1]), flush=True)
    for objective in args.variants:
        for kind, rs in (("objects", [r for r in rows if "digit" in r]), ("surfaces", [r for r in rows if "texture" in r])):
            if rs:
                means = {m: round(100 * float(np.mean([r[objective][m] for r in rs])), 2)
                         for m in rs[0][objective] if m != "chosen"}
                print(objective, kind, "mean validation", means)
    return 0


@contextlib.contextmanager
def latent_weights(weights: tuple[float, ...] | None) -> Iterator[None]:
    """The selection's latent weights set to ``weights`` for one fit (None: unchanged)."""
    import aedetect.anomaly.select as sel

    before = sel.LATENT_WEIGHTS
    sel.LATENT_WEIGHTS = weights or before
    try:
        yield
    finally:
        sel.LATENT_WEIGHTS = before


def surface_row(texture: str, seed: int, variants: list[str]) -> dict[str, Any]:
    """One surface: the suite's model, training and calibration crops, fitted with each objective,
    scored on defects in the calibration band (not the test band)."""
    from anomaly_suite import CALIB_BAND

    train, calib, _ = surface_case(texture, seed, argparse.Namespace(stride=16, max_crops=600))  # the suite's defaults
    val = defect_test_set(texture, 64, 16, rows=CALIB_BAND, seed=200)
    row: dict[str, Any] = {"texture": texture, "seed": seed}
    for objective in variants:
        det = detector(texture, seed, 15, (64, 64), VARIANTS[objective])
        det.fit(train, calibration=calib)
        res = det.score(val, keep_images=False, batch_size=256)
        px = pixel_metrics(val.masks[:, 0].numpy(), np.asarray(res.maps))  # type: ignore[union-attr]
        row[objective] = {"val_auroc": image_auroc(val.labels.numpy(), res.scores),  # type: ignore[union-attr]
                          "pixel_auroc": px["pixel_auroc"], "aupro": px["aupro"],
                          "chosen": det.calibration_["selection"]["chosen"]}
    return row


if __name__ == "__main__":
    raise SystemExit(main())
