"""Does averaging several candidates beat picking one? Judged on real validation anomalies
(issue 12; MNIST's *training* split only, the test split is not read).

Reads the score caches of bench/select_rule_val.py (``--cache DIR``, bench/_score_cache.py).
Each rule below sees the synthetic scores only (of ``--families``, default all cached); the
table gives the real validation AUROC of what it builds.

    python bench/select_rule_val.py --digits 0 1 2 3 4 5 6 7 8 9 --cache bench/out/ens
    python bench/select_ensemble_val.py bench/out/ens
    python bench/select_ensemble_val.py bench/out/ens --families cutpaste elastic affine mirror
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _results import print_means, write_json
from _score_cache import Case, load_cases


def top(m: int) -> Callable[[Case, np.ndarray], np.ndarray]:
    """The mean of the m candidates with the best synthetic objective."""
    def rule(c: Case, obj: np.ndarray) -> np.ndarray:
        w = np.zeros(len(obj))
        w[np.argsort(-obj, kind="stable")[:m]] = 1.0 / m
        return w
    return rule


def greedy(steps: int, pool: int = 40) -> Callable[[Case, np.ndarray], np.ndarray]:
    """Forward ensemble selection with replacement (Caruana et al. 2004): start from the best
    candidate, add whichever of the ``pool`` best most raises the synthetic objective of the
    mean, stop after ``steps`` additions or when none raises it."""
    def rule(c: Case, obj: np.ndarray) -> np.ndarray:
        order = np.argsort(-obj, kind="stable")[:pool]
        counts = np.zeros(len(obj))
        counts[order[0]] = 1
        total, best = c.s[order[0]].copy(), obj[order[0]]
        for _ in range(steps):
            gains = [(c.synthetic((total + c.s[j]) / (counts.sum() + 1)), j) for j in order]
            value, j = max(gains)
            if value <= best:
                break
            best, total, counts[j] = value, total + c.s[j], counts[j] + 1
        return counts / counts.sum()
    return rule


def one_per_kind(c: Case, obj: np.ndarray) -> np.ndarray:
    """The best candidate of each kind (reconstruction alone, + a latent kNN, a latent kNN
    alone, the features map), averaged: diverse by construction."""
    def kind(name: str) -> str:
        if name.startswith("features"):
            return "features"
        return "latent" if name.endswith("alone") else "recon+latent" if "kNN" in name else "recon"
    w = np.zeros(len(obj))
    for k in {kind(n) for n in c.names}:
        idx = [i for i, n in enumerate(c.names) if kind(n) == k]
        w[max(idx, key=lambda i: obj[i])] = 1.0
    return w / w.sum()


RULES: dict[str, Callable[[Case, np.ndarray], np.ndarray]] = {
    "best single candidate": top(1), "mean of the top 2": top(2), "mean of the top 3": top(3),
    "mean of the top 5": top(5), "mean of the top 10": top(10), "mean of the top 20": top(20),
    "greedy forward, 3 steps": greedy(3), "greedy forward, 10 steps": greedy(10),
    "best of each kind, averaged": one_per_kind,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--families", nargs="+", default=None, help="the synthetic families the rules see")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out: dict[str, dict[str, float]] = {}
    for c in load_cases(args.cache, args.families):
        obj = c.objectives()
        row = {"best single in hindsight": float(c.real_each().max())}
        for name, rule in RULES.items():
            w = rule(c, obj)
            row[name] = c.real(w)
            row[name + " (members)"] = int((w > 0).sum())
        out[c.name] = row
        print(c.name, {k: round(100 * v, 2) if "members" not in k else v for k, v in row.items()}, flush=True)
    print_means("rule", f"mean real validation AUROC over {', '.join(out)}",
                {name: float(np.mean([r[name] for r in out.values()])) for name in ["best single in hindsight", *RULES]})
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
