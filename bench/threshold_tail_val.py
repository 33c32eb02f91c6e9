"""Which threshold rule keeps a 1 % false-positive rate when the calibration set is small?
(issue 12; one-class MNIST's *training* split only, the test split is not read.)

For digit k: --train training images of k fit the suite's object model (label-free selection
on, as a user runs it). Then --normals other training images of k and --anomalies training
images of the other digits are scored once. For each calibration size n, --draws random
draws of n of those normal scores set a threshold by each rule, and the rule is judged on
the normal scores not drawn (false-positive rate) and on the anomalies (recall):

* ``highest-at-most``: the order statistic with at most fpr x n scores above it (aedetect's
  rule before this bench);
* ``conformal order statistic``: rank ceil((1 - fpr)(n + 1)) (aedetect.anomaly.threshold.threshold_at_fpr);
* ``log-normal bound``: the one-sided prediction bound of a normal fit to the log scores,
  exp(m + t(n - 1, 1 - fpr) x s x sqrt(1 + 1 / n));
* ``exponential-tail bound``: aedetect.anomaly.tail.exponential_threshold;
* ``aedetect``: what aedetect.anomaly.threshold.fpr_threshold does (the tail bound where the
  conformal rank is above n, the order statistic from there on).

    OMP_NUM_THREADS=1 AEDETECT_DATA_ROOT=/work/shared/data python bench/threshold_tail_val.py \\
        --digits 0 1 2 3 4 5 6 7 8 9 --cache bench/out/tail --json bench/results/threshold_tail_val.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Callable

import numpy as np
import torch
from scipy.stats import t as student_t

from aedetect.anomaly.tail import exponential_threshold
from aedetect.anomaly.threshold import fpr_threshold, threshold_at_fpr

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import mnist_training_split, validation_case
from _results import write_json
from anomaly_suite import detector


def highest_at_most(s: np.ndarray, fpr: float) -> float:
    """The highest score with at most fpr x n scores above it (the rule before this bench)."""
    s = np.sort(s)
    return float(s[s.size - 1 - int(math.floor(fpr * s.size))])


def lognormal_bound(s: np.ndarray, fpr: float) -> float:
    """The prediction bound of a normal fit to the log scores (scores > 0 here)."""
    y = np.log(s)
    n = y.size
    return float(math.exp(y.mean() + student_t.ppf(1 - fpr, n - 1) * y.std(ddof=1) * math.sqrt(1 + 1 / n)))


RULES: dict[str, Callable[[np.ndarray, float], float]] = {
    "highest-at-most": highest_at_most,
    "conformal order statistic": threshold_at_fpr,
    "log-normal bound": lognormal_bound,
    "exponential-tail bound": lambda s, f: exponential_threshold(s, f) or threshold_at_fpr(s, f),
    "aedetect": lambda s, f: fpr_threshold(s, f)[0],
}
SIZES = (10, 17, 30, 60, 99, 200)


def judge(normal: np.ndarray, anomalous: np.ndarray, target: float, sizes: tuple[int, ...], draws: int,
          seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per calibration size and rule: mean and median FPR on the undrawn normals, the share of
    draws whose FPR is within 2x the target, and the mean recall on the anomalies."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for n in sizes:
        res: dict[str, list[tuple[float, float]]] = {r: [] for r in RULES}
        for _ in range(draws):
            pick = np.zeros(normal.size, bool)
            pick[rng.choice(normal.size, n, replace=False)] = True
            for name, rule in RULES.items():
                t = rule(normal[pick], target)
                res[name].append((float((normal[~pick] > t).mean()), float((anomalous > t).mean())))
        out[str(n)] = {name: {"mean_fpr": float(np.mean([a for a, _ in v])),
                              "median_fpr": float(np.median([a for a, _ in v])),
                              "within_2x": float(np.mean([a <= 2 * target for a, _ in v])),
                              "recall": float(np.mean([b for _, b in v]))} for name, v in res.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", nargs="+", type=int, default=list(range(10)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--normals", type=int, default=4000)
    ap.add_argument("--anomalies", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--target", type=float, default=0.01)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cache", default=None, help="folder keeping each case's scores, so rules can be re-judged")
    ap.add_argument("--data-root", default=os.environ.get("AEDETECT_DATA_ROOT"))
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    everything = mnist_training_split(args.data_root)
    rows: list[dict[str, Any]] = []
    for k in args.digits:
        train, normals, _ = validation_case(everything, k, args.seed, args.train, args.normals)
        _, _, anomalies = validation_case(everything, k, args.seed + 1, 0, args.anomalies)
        cached = os.path.join(args.cache, f"digit{k}-s{args.seed}-t{args.train}.npz") if args.cache else None
        if cached and os.path.exists(cached):
            z = np.load(cached)
            normal, anomalous, chosen = z["normal"], z["anomalous"], str(z["chosen"])
        else:
            det = detector("mnist", args.seed, args.epochs, (28, 28)).fit(train)
            normal = np.asarray(det.anomaly_score(normals), dtype=np.float64)
            anomalous = np.asarray(det.anomaly_score(anomalies), dtype=np.float64)
            chosen = det.calibration_["selection"]["chosen"]
            if cached:
                os.makedirs(args.cache, exist_ok=True)
                np.savez(cached, normal=normal, anomalous=anomalous, chosen=chosen)
        rows.append({"digit": k, "seed": args.seed, "normals": int(normal.size), "chosen": chosen,
                     "by_size": judge(normal, anomalous, args.target, SIZES, args.draws, args.seed)})
        print(json.dumps({"digit": k, "n17": rows[-1]["by_size"]["17"]}), flush=True)
    print(f"\n| calibration images | rule | mean FPR | median FPR | draws within 2x of {100 * args.target:g} % "
          "| recall on other digits |\n|---|---|---|---|---|---|")
    for n in SIZES:
        for name in RULES:
            v = [r["by_size"][str(n)][name] for r in rows]
            print(f"| {n} | {name} | {100 * np.mean([x['mean_fpr'] for x in v]):.2f} % | "
                  f"{100 * np.mean([x['median_fpr'] for x in v]):.2f} % | {100 * np.mean([x['within_2x'] for x in v]):.0f} % | "
                  f"{100 * np.mean([x['recall'] for x in v]):.1f} % |")
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
