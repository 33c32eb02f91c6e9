"""How many synthetic anomalies per family the ``pretrained`` map's selection candidates need:
ranked on all of them, the demo's selection ran past its budget. One model per surface row and
seed is trained as the suite trains it (bench/anomaly_suite.py: top half, 15 epochs), then the
selection runs once per ``--ranks`` value on that same model, with the calibration band as its
held-out normal images (the suite's test band is not read). Reported per run: the candidate
chosen, its objective, the pretrained candidates' best objective, and the selection's seconds.

    OMP_NUM_THREADS=1 python bench/select_pretrained_rank_val.py --rows brick grass gravel cell \\
        immunohistochemistry moon --seeds 0 --ranks all 32 --json bench/results/select_pretrained_rank_val.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from typing import Any

import torch

import aedetect.anomaly.select as select
from aedetect.anomaly.settings import AnomalySettings
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json
from anomaly_suite import CALIB_BAND, TRAIN_BAND, detector


def one(row: str, seed: int, ranks: list[str], epochs: int) -> list[dict[str, Any]]:
    crops = texture_crops(row, 64, 16, rows=TRAIN_BAND)
    if len(crops) > 600:
        crops = crops[torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed))[:600]]
    train, calib = ImageSet(images=crops), ImageSet(images=texture_crops(row, 64, 16, rows=CALIB_BAND))
    det = detector(row, seed, epochs, (64, 64), anomaly={"select": "none"}).fit(train, calibration=calib)
    cfg = det.config_
    s = replace(AnomalySettings.from_config(cfg), select="auto")
    out = []
    for rank in ranks:
        select.PRETRAINED_RANK_ANOMALIES = None if rank == "all" else int(rank)
        t0 = time.perf_counter()
        _, rec = select.select_settings(det.model_, calib, train, cfg, s, "cpu")
        pre = [c for c in rec["candidates"] if c["name"].startswith("pretrained")]
        r = {"row": row, "seed": seed, "rank": rank, "chosen": rec["chosen"], "chosen_auroc": rec["chosen_auroc"],
             "best_pretrained": max(pre, key=lambda c: c["auroc"])["name"] if pre else None,
             "best_pretrained_auroc": max(c["auroc"] for c in pre) if pre else None,
             "ranked_on": rec.get("pretrained_ranked_on"), "skipped": rec["candidates_skipped"],
             "seconds": round(time.perf_counter() - t0, 1)}
        print(r, flush=True)
        out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=["brick", "grass", "gravel", "cell", "immunohistochemistry", "moon"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--ranks", nargs="+", default=["all", "32"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = [r for row in args.rows for seed in args.seeds for r in one(row, seed, args.ranks, args.epochs)]
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
