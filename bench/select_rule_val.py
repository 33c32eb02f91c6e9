"""How well does each label-free selection rule pick, judged on real validation anomalies?
(issue 12; MNIST's *training* split only, the test split is not read.)

For digit k: a seeded sample of --train training images of k trains one detector (the suite's
object model). Held-out training images of k (normal) and of the other nine digits
(anomalous) form a labelled validation set. Every candidate of aedetect.anomaly.select is
scored twice on the same model: by the synthetic objective (the held-out normals against
synthetic anomalies made from them, exactly as ``fit`` does) and by its AUROC on the real
validation anomalies (the same candidate machinery, with the real anomalies in place of a
synthetic family). The synthetic set has all twelve families, so a rule may use some of them.
Each rule picks a candidate from the synthetic scores alone; the table gives the real
validation AUROC of what it picked, so a rule can be chosen here, on validation data, before
the suite's test split is scored. ``--cache DIR`` keeps every candidate's scores for
bench/select_family_val.py and bench/select_ensemble_val.py.

    OMP_NUM_THREADS=1 AEDETECT_DATA_ROOT=/work/shared/data python bench/select_rule_val.py --digits 0 1 2 3 4
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import aedetect.anomaly.select as sel
from aedetect import AnomalyDetector
from aedetect.anomaly.settings import FAMILY_NAMES, OBJECT_FAMILIES, AnomalySettings
from aedetect.data.imageset import ImageSet

sys.path.insert(0, os.path.dirname(__file__))
from _mnist_val import training_split_for, validation_case, validation_parser
from _results import print_means, write_json
from anomaly_suite import detector

Rule = Callable[[list[dict[str, Any]]], dict[str, Any]]


def _best(cands: list[dict[str, Any]], key: str = "auroc") -> dict[str, Any]:
    return max(cands, key=lambda c: c[key])


RULES: dict[str, Rule] = {
    "image objective, the shape families (select_families = auto on objects)": lambda c: _best(c, "shape_auroc"),
    "image objective, all twelve families (all candidates)": lambda c: _best(c, "image_auroc"),
    "image objective, without raw-pixel kNN candidates": lambda c: _best(
        [x for x in c if "pixels/" not in x["name"]], "image_auroc"),
    "image+pixel objective": lambda c: _best(c, "objective_ip"),
    "image objective, latent kNN candidates only": lambda c: _best([x for x in c if "kNN" in x["name"]], "image_auroc"),
    "image objective, reconstruction + latent only": lambda c: _best(
        [x for x in c if "kNN" in x["name"] and "alone" not in x["name"]], "image_auroc"),
    "image objective, global families only": lambda c: _best(c, "global_auroc"),
    "median over the families": lambda c: _best(c, "median_family"),
    "mean minus half the spread over the families": lambda c: _best(c, "mean_minus_half_sd"),
    "mean without the best and the worst family": lambda c: _best(c, "trimmed_mean"),
    "image objective, worst family": lambda c: _best(c, "worst_family"),
}


def candidates(det: AnomalyDetector, normals: ImageSet, train: ImageSet,
               s: AnomalySettings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The selection's candidates with their objectives and, recorded on the way (the record
    keeps them for the chosen one only), each candidate's AUROC per family."""
    per_family: list[dict[str, float]] = []
    scores_of: list[np.ndarray] = []
    split = sel.Validation.split

    def recording(self: sel.Validation, scores: np.ndarray) -> dict[str, float]:
        per_family.append(split(self, scores))
        scores_of.append(np.asarray(scores, np.float32))
        return per_family[-1]

    sel.Validation.split = recording  # type: ignore[method-assign]
    try:
        _, rec = sel.select_settings(det.model_, normals, train, det.config_, s, torch.device("cpu"))
    finally:
        sel.Validation.split = split  # type: ignore[method-assign]
    cands = rec["candidates"]
    assert len(cands) == len(per_family)
    for c, pf, sc in zip(cands, per_family, scores_of):
        c["per_family"], c["scores"] = pf, sc
    return cands, rec


def real_candidates(det: AnomalyDetector, normals: ImageSet, real: np.ndarray, train: ImageSet,
                    s: AnomalySettings) -> list[dict[str, Any]]:
    """Every candidate's AUROC of ``normals`` against real anomalies (floats in [0, 1]): the
    selection's own machinery with the real images in place of its one synthetic family (one
    draw: the real anomalies are there once, however few the normals)."""
    original = sel.make_anomalies
    sel.make_anomalies = lambda images, family, seed: (  # type: ignore[assignment]
        real[:len(images)], np.zeros(images.shape[:1] + images.shape[2:], bool))
    try:
        truth, _ = candidates(det, normals, train, replace(s, select_families=["mix"], select_objective="image",
                                                            select_images=len(normals), select_draws=1))
    finally:
        sel.make_anomalies = original
    return truth


def save_scores(path: Path, synth: list[dict[str, Any]], truth: list[dict[str, Any]], rec: dict[str, Any]) -> None:
    """Every candidate's scores on the synthetic set (normals, then family by family) and on the
    real one (the same normals, then the real anomalies), rows in the same candidate order."""
    assert [c["name"] for c in synth] == [c["name"] for c in truth]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, names=np.array([c["name"] for c in synth]), families=np.array(rec["families"]),
                        synthetic=np.stack([c["scores"] for c in synth]), real=np.stack([c["scores"] for c in truth]),
                        n_normal=rec["normal_images"])
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = validation_parser(__doc__, train=1000, val=256, epochs=5, digits=list(range(10)),
                           val_help="validation normals, and as many anomalies")
    ap.add_argument("--cache", default=None, help="folder: every candidate's scores per digit (digit<k>-s<seed>.npz), "
                    "for bench/select_ensemble_val.py")
    args = ap.parse_args(argv)
    everything = training_split_for(args)
    out = []
    for k in args.digits:
        train, normals, anomalies = validation_case(everything, k, args.seed, args.train, args.val)
        real = anomalies.images.numpy().astype(np.float32) / float(anomalies.max_value)
        det = detector("mnist", args.seed, args.epochs, (28, 28), {"select": "none"}).fit(train)
        base = replace(sel.AnomalySettings.from_config(det.config_), select="on", select_images=args.val,
                       select_budget=1e6, select_objective="image+pixel", select_families=list(FAMILY_NAMES))
        synth, rec = candidates(det, normals, train, base)
        truth = real_candidates(det, normals, real, train, base)
        real_auroc = {c["name"]: c["image_auroc"] for c in truth}
        if args.cache:
            save_scores(Path(args.cache) / f"digit{k}-s{args.seed}.npz", synth, truth, rec)
        glob = [f for f in rec["families"] if f not in rec["objective"].split(" on ", 1)[-1].split(", ")]
        cands = [{"name": c["name"], "image_auroc": c["image_auroc"], "objective_ip": c["auroc"],
                  "global_auroc": float(np.mean([c["per_family"][f] for f in glob])),
                  "shape_auroc": float(np.mean([c["per_family"][f] for f in OBJECT_FAMILIES])),
                  "worst_family": min(c["per_family"].values()),
                  "median_family": float(np.median(list(c["per_family"].values()))),
                  "mean_minus_half_sd": float(np.mean(list(c["per_family"].values()))
                                              - 0.5 * np.std(list(c["per_family"].values()))),
                  "trimmed_mean": float(np.mean(sorted(c["per_family"].values())[1:-1]))} for c in synth]
        row: dict[str, Any] = {"digit": k, "best_possible": max(real_auroc.values()),
                               "given_default": real_auroc.get(rec["given"]), "global_families": glob}
        for name, rule in RULES.items():
            pick = rule(cands)
            row[name] = {"pick": pick["name"], "real_val_auroc": real_auroc[pick["name"]]}
        out.append(row)
        print(json.dumps(row), flush=True)
    print_means("rule", "mean real validation AUROC over digits " + " ".join(str(d) for d in args.digits), {
        name: float(np.mean([r[name] if not isinstance(r[name], dict) else r[name]["real_val_auroc"] for r in out]))
        for name in ["best_possible", "given_default", *RULES]})
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
