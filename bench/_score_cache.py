"""The candidate-score caches of bench/select_rule_val.py (``--cache DIR``), read back so that
other ways of selecting can be judged on the same models without training them again.

One file per digit: every candidate's scores on the synthetic validation set (held-out
normals, then family by family) and on the real one (the same normals, then training images
of the other nine digits; MNIST's training split only). Scores are standardised by the
held-out normals' mean and standard deviation, so that averaging candidates weighs them alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aedetect.anomaly.select import auroc


class Case:
    """One digit's cached candidate scores; ``families`` narrows the synthetic set to those."""

    def __init__(self, path: Path, families: list[str] | None = None) -> None:
        d = np.load(path)
        self.name = path.stem
        self.names = [str(x) for x in d["names"]]
        cached = [str(x) for x in d["families"]]
        self.families = families or cached
        self.n = n = int(d["n_normal"])
        s, r = d["synthetic"].astype(np.float64), d["real"].astype(np.float64)
        keep = [0] + [cached.index(f) + 1 for f in self.families]
        s = np.concatenate([s[:, i * n:(i + 1) * n] for i in keep], axis=1)
        mu, sd = s[:, :n].mean(1, keepdims=True), s[:, :n].std(1, keepdims=True) + 1e-12
        self.s, self.r = (s - mu) / sd, (r - mu) / sd

    def per_family(self, scores: np.ndarray) -> np.ndarray:
        """Image AUROC of one score vector on each synthetic family."""
        n = self.n
        return np.array([auroc(scores[:n], scores[n * (i + 1):n * (i + 2)]) for i in range(len(self.families))])

    def synthetic(self, scores: np.ndarray) -> float:
        """The selection's objective: the image AUROC averaged over the families."""
        return float(self.per_family(scores).mean())

    def objectives(self) -> np.ndarray:
        return np.array([self.synthetic(row) for row in self.s])

    def real(self, weights: np.ndarray) -> float:
        """Real validation AUROC of the weighted mean of the candidates."""
        sc = weights @ self.r
        return auroc(sc[:self.n], sc[self.n:])

    def real_each(self) -> np.ndarray:
        """Real validation AUROC of every candidate alone."""
        return np.array([auroc(row[:self.n], row[self.n:]) for row in self.r])


def load_cases(folder: Path, families: list[str] | None = None) -> list[Case]:
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise SystemExit(f"{folder}: no score caches (run bench/select_rule_val.py --cache {folder})")
    return [Case(p, families) for p in paths]
