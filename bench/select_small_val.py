"""How noisy is the label-free selection with a handful of held-out normal images, and does
drawing more synthetic anomalies per image, or holding out more images, help? Judged on real
validation anomalies (issue 12; MNIST's *training* split only, the test split is not read).

The suite's 8x8 digits row selects from 16-17 held-out normal images, and there the raw-pixel
kNN baseline is ahead. This bench rebuilds that regime on MNIST, where the training split is
large enough to judge the picks: for digit k, --train training images of k (125, about the
digits row's) train the suite's object model for --epochs (30, as that row); --select other
training images of k are the selection's held-out normals; --val more training images of k
and --val training images of the other digits judge every candidate. The variants are
``draws`` (``anomaly.select_draws``: that many anomalies of each family per held-out image,
each draw from its own seed; ``auto`` is 4 for 17 images, 2 for 34) and ``normals`` (how many
held-out images: 17, or 34 as if the early-stopping split were added).

    OMP_NUM_THREADS=1 AEDETECT_DATA_ROOT=/work/shared/data python bench/select_small_val.py --digits 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import torch

import aedetect.anomaly.select as sel

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import training_split_for, validation_case, validation_parser
from _results import print_means, write_json
from anomaly_suite import detector
from select_rule_val import candidates, real_candidates


def averaged(synth: list[dict[str, Any]], truth: list[dict[str, Any]], n: int, k: int,
             families: tuple[str, ...] | None) -> float:
    """Real validation AUROC of the mean of the ``k`` best-ranked candidates' scores, each
    standardised by its scores on the selection's ``n`` held-out normals (so that no candidate
    weighs more for its scale); ``truth`` holds the same candidates' scores on the judging set
    (its normals first, then as many real anomalies)."""
    assert [c["name"] for c in synth] == [c["name"] for c in truth]
    rank = [c["auroc"] if families is None else float(np.mean([c["per_family"][f] for f in families])) for c in synth]
    top = np.argsort(rank)[::-1][:k]
    mixed = sum((truth[i]["scores"] - synth[i]["scores"][:n].mean()) / (synth[i]["scores"][:n].std() + 1e-12)
                for i in top)
    half = len(mixed) // 2
    return float(sel.auroc(mixed[:half], mixed[half:]))


def main(argv: list[str] | None = None) -> int:
    ap = validation_parser(__doc__, train=125, val=500, epochs=30, digits=list(range(10)), seeds=True)
    ap.add_argument("--normals", nargs="+", type=int, default=[17, 34], help="held-out normals the selection uses")
    ap.add_argument("--draws", nargs="+", default=["1", "auto"], help="anomaly.select_draws values")
    ap.add_argument("--family-sets", nargs="+", default=None, metavar="F,F,...",
                    help="also pick by each of these sets of synthetic families (comma-separated), all scored "
                         "once with their union; the row keys name the set")
    ap.add_argument("--average", nargs="+", type=int, default=[], metavar="K",
                    help="also average the K best-ranked candidates' scores (each standardised by the selection's "
                         "held-out normals) instead of picking one")
    args = ap.parse_args(argv)
    sets = [tuple(x.split(",")) for x in args.family_sets] if args.family_sets else None
    everything = training_split_for(args)
    out: list[dict[str, Any]] = []
    most = max(args.normals)
    for seed in args.seeds:
        for k in args.digits:
            train, held, anomalies = validation_case(everything, k, seed, args.train, most + args.val)
            judge = held.subset(torch.arange(most, len(held)))
            real = anomalies.images[:len(judge)].numpy().astype(np.float32) / float(anomalies.max_value)
            det = detector("mnist", seed, args.epochs, (28, 28), {"select": "none"}).fit(train)
            base = replace(sel.AnomalySettings.from_config(det.config_), select="on", select_budget=1e6)
            if sets:
                base = replace(base, select_families=sorted({f for fs in sets for f in fs}))
            truth_cands = real_candidates(det, judge, real, train, base)
            truth = {c["name"]: c["image_auroc"] for c in truth_cands}
            row: dict[str, Any] = {"digit": k, "seed": seed, "best_possible": max(truth.values())}
            for n in args.normals:
                for r in args.draws:
                    draws = r if r == "auto" else int(r)
                    synth, rec = candidates(det, held.subset(torch.arange(n)), train,
                                            replace(base, select_images=n, select_draws=draws))
                    label = f"{n} normals x {rec['draws']} draws ({r})"
                    for fs in sets or [None]:
                        pick = max(synth, key=lambda c: c["auroc"] if fs is None else
                                   float(np.mean([c["per_family"][f] for f in fs])))
                        key = label if fs is None else f"{label}, {'+'.join(fs)}"
                        row[key] = {"pick": pick["name"], "real_val_auroc": truth[pick["name"]]}
                        for k_avg in args.average:
                            row[f"{key}, average of the top {k_avg}"] = {
                                "real_val_auroc": averaged(synth, truth_cands, n, k_avg, fs)}
            out.append(row)
            print(json.dumps(row), flush=True)
    keys = [k for k in out[0] if "draws" in k]
    print_means("held-out normals x anomalies per image and family", f"mean real validation AUROC ({len(out)} models)",
                {"(best candidate in hindsight)": float(np.mean([r["best_possible"] for r in out])),
                 **{key: float(np.mean([r[key]["real_val_auroc"] for r in out])) for key in keys}})
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
