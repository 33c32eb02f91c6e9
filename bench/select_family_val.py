"""Which synthetic families should rank the candidates on aligned objects? Judged on real
validation anomalies (issue 12; MNIST's *training* split only, the test split is not read).

Reads the score caches of bench/select_rule_val.py (``--cache DIR``, bench/_score_cache.py),
made with all twelve families. For each family alone and for a few sets of families fixed in
advance (by what they change: shape, intensity, texture), the candidate with the best mean
synthetic AUROC over the set is picked; the table gives its real validation AUROC (held-out
training images of the digit against training images of the other nine), and the mean
Spearman correlation over digits between a family's AUROCs and the real ones over every
candidate, i.e. how well that family ranks the candidates, not only the one it picks.

    python bench/select_rule_val.py --digits 0 1 2 3 4 5 6 7 8 9 --cache bench/out/ens
    python bench/select_family_val.py bench/out/ens --json bench/results/select_family_val_mnist.json
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json
from _score_cache import load_cases
from aedetect.anomaly.settings import FAMILY_NAMES, OBJECT_FAMILIES

SETS: dict[str, tuple[str, ...]] = {
    "all twelve": FAMILY_NAMES,
    "the six global": ("cutpaste", "mix", "elastic", "affine", "mirror", "contrast"),
    "shape: elastic, affine, mirror (auto on objects)": OBJECT_FAMILIES,
    "cutpaste, elastic, affine, mirror (auto before)": ("cutpaste", "elastic", "affine", "mirror"),
    "the four and patch": ("patch", "cutpaste", "elastic", "affine", "mirror"),
    "intensity: stain, blur, shift, mix, contrast": ("stain", "blur", "shift", "mix", "contrast"),
    "all but mix and contrast": tuple(f for f in FAMILY_NAMES if f not in ("mix", "contrast")),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cases = load_cases(args.cache)
    real = np.array([c.real_each() for c in cases])  # digit x candidate
    fam = np.array([[c.per_family(row) for row in c.s] for c in cases])  # digit x candidate x family
    families = cases[0].families
    rows = np.arange(len(cases))
    out: dict[str, dict[str, object]] = {}
    print(f"| families ranking the candidates | real AUROC of the pick (mean over {len(cases)} digits) "
          "| per digit | Spearman with the real AUROC |\n|---|---|---|---|")
    for name, fs in [(f, (f,)) for f in families] + list(SETS.items()):
        idx = [families.index(f) for f in fs]
        obj = fam[:, :, idx].mean(2)
        picked = real[rows, obj.argmax(1)]
        rho = float(np.mean([spearmanr(obj[d], real[d]).correlation for d in rows]))
        out[name] = {"families": list(fs), "real_auroc": float(picked.mean()), "per_digit": picked.round(5).tolist(),
                     "spearman": rho}
        print(f"| {name} | {100 * picked.mean():.2f} | {' '.join(f'{100 * v:.1f}' for v in picked)} | {rho:.2f} |")
    best = real.max(1)
    print(f"| (best single in hindsight) | {100 * best.mean():.2f} | {' '.join(f'{100 * v:.1f}' for v in best)} | |")
    out["best single in hindsight"] = {"real_auroc": float(best.mean()), "per_digit": best.round(5).tolist()}
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
