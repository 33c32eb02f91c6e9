"""The pictures of a score run's report: ROC, precision-recall and the score histogram."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_curves(out: Path, labels: np.ndarray, scores: np.ndarray, threshold: float) -> None:
    """ROC and precision-recall curves, the calibrated operating point marked."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from aedetect.core.plots import _plt, save_figure

    plt = _plt()
    fpr, tpr, _ = roc_curve(labels, scores)
    flags = scores > threshold
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, lw=1.5)
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    ax.plot(flags[labels == 0].mean(), flags[labels == 1].mean(), "o", color="red", label="threshold")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("ROC (image level)")
    ax.legend(frameon=False, loc="lower right")
    save_figure(fig, out / "roc.png")
    prec, rec, _ = precision_recall_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(rec, prec, lw=1.5)
    if flags.any():
        ax.plot(flags[labels == 1].mean(), (labels[flags] == 1).mean(), "o", color="red", label="threshold")
        ax.legend(frameon=False, loc="lower left")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("precision-recall (image level)")
    save_figure(fig, out / "pr.png")


def save_histogram(path: Path, scores: np.ndarray, labels: np.ndarray | None, threshold: float) -> Path:
    """Scores of normal and anomalous images (all images without labels), the threshold drawn."""
    from aedetect.core.plots import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    lo, hi = float(min(scores.min(), threshold)), float(max(scores.max(), threshold))
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-9, 41)
    if labels is None:
        ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label=f"all images ({scores.size})")
    else:
        for lab, name, colour in ((0, "normal", "tab:blue"), (1, "anomalous", "tab:orange")):
            s = scores[labels == lab]
            if s.size:
                ax.hist(s, bins=bins, color=colour, alpha=0.6, label=f"{name} ({s.size})")
    ax.axvline(threshold, color="red", lw=1.5, ls="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel("image score (higher = more anomalous)")
    ax.set_ylabel("images")
    ax.set_title("score histogram")
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, path)
