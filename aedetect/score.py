"""``aedetect score MODEL DATA --out DIR`` as a library call.

Writes, in a new folder:
  scores.csv       path,score,normalized_score,flag,label,kind,error (one row per file; an
                   unreadable file gets a row with only path and error)
  heatmaps/*.png   input | reconstruction | error map | overlay with the predicted-mask contour
                   (red; ground truth in green where known), flagged images only unless all
  metrics.json     with labels: image_auroc, image_ap, f1_at_threshold, best_f1 (+ pixel_auroc,
                   aupro with masks), and the threshold used
  roc.png, pr.png  ROC and precision-recall curves (with labels of both classes)
Score direction: higher = more anomalous; flag = score > the calibrated threshold.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aedetect.data.imageset import ImageSet
from aedetect.detector import AnomalyDetector, AnomalyResult
from aedetect.fsutil import atomic_path, new_run_dir, write_text_atomic
from aedetect.metrics import both_classes, image_metrics, pixel_metrics
from aedetect.plots import upscale_factor
from aedetect.progress import progress_bar

log = logging.getLogger("aedetect")


@dataclass
class ScoreReport:
    """What a score run wrote and found (the CLI prints it)."""

    out: Path
    n_images: int
    n_flagged: int
    n_errors: int
    threshold: float
    metrics: dict[str, Any] = field(default_factory=dict)
    heatmaps: int = 0
    flagged_paths: list[str] = field(default_factory=list)


def write_scores_csv(path: Path, data: ImageSet, res: AnomalyResult) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "score", "normalized_score", "flag", "label", "kind", "error"])
    for i, p in enumerate(data.paths or [str(i) for i in range(len(data))]):
        label = "" if data.labels is None else int(data.labels[i])
        kind = data.kinds[i] if data.kinds else ""
        w.writerow([p, f"{res.scores[i]:.8g}", f"{res.normalized[i]:.6f}", int(res.flags[i]), label, kind, ""])
    for p, reason in data.skipped:
        w.writerow([p, "", "", "", "", "", reason])
    write_text_atomic(path, buf.getvalue())


def _heat_rgb(m: np.ndarray, vmax: float) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(m / max(vmax, 1e-12), 0, 1))[..., :3] * 255).astype(np.uint8)


def _edge(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def heatmap_panel(inp: np.ndarray, rec: np.ndarray, m: np.ndarray, pred: np.ndarray, vmax: float,
                  gt: np.ndarray | None = None, min_side: int = 128) -> np.ndarray:
    """input | reconstruction | error map | overlay (red: predicted mask, green: ground truth)."""

    def rgb(x: np.ndarray) -> np.ndarray:  # (C, H, W) [0, 1] -> (H, W, 3) uint8
        x = np.repeat(x, 3, 0) if x.shape[0] == 1 else x
        return (np.clip(x.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)

    h, w = m.shape
    f = upscale_factor(h, w, min_side)

    def up(x: np.ndarray) -> np.ndarray:  # nearest-neighbour upscaling, so small images stay visible
        return np.repeat(np.repeat(x, f, 0), f, 1)

    a, b, heat = up(rgb(inp)), up(rgb(rec)), up(_heat_rgb(m, vmax))
    over = (0.55 * a + 0.45 * heat).astype(np.uint8)
    over[_edge(up(pred))] = (255, 40, 40)  # contours drawn after upscaling: thin at any size
    if gt is not None:
        over[_edge(up(gt > 0))] = (40, 255, 40)
    sep = np.full((h * f, 4, 3), 255, np.uint8)
    return np.concatenate([a, sep, b, sep, heat, sep, over], axis=1)


def _safe_name(i: int, path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem if "/" in path or "." in path else path)[-60:]
    return f"{i:05d}_{stem}.png"


def write_heatmaps(folder: Path, data: ImageSet, res: AnomalyResult, vmax: float, which: np.ndarray) -> int:
    from PIL import Image

    idx = np.flatnonzero(which)
    with progress_bar("heat maps", total=len(idx), hide_below=50) as bar:
        for i in idx:
            gt = data.masks[i, 0].numpy() if data.masks is not None else None
            panel = heatmap_panel(res.inputs[i], res.recon[i], res.maps[i], res.masks[i], vmax, gt)  # type: ignore[index]
            path = folder / _safe_name(int(i), data.paths[i] if data.paths else str(i))
            with atomic_path(path) as tmp:
                Image.fromarray(panel).save(tmp, format="PNG")
            bar.advance()
    return len(idx)


def save_curves(out: Path, labels: np.ndarray, scores: np.ndarray, threshold: float) -> None:
    """ROC and precision-recall curves, the calibrated operating point marked."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from aedetect.plots import _plt, save_figure

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


def compute_metrics(data: ImageSet, res: AnomalyResult) -> dict[str, Any]:
    """The metrics.json record (empty without labels)."""
    if data.labels is None:
        return {}
    labels = data.labels.numpy()
    out: dict[str, Any] = {"threshold": res.threshold, **image_metrics(labels, res.scores, res.threshold)}
    if data.masks is not None:
        out.update(pixel_metrics(data.masks[:, 0].numpy(), res.maps))
        out["pixel_threshold"] = res.pixel_threshold
    return out


def score_data(model: str | Path, data: str | ImageSet, out: str | Path | None = None, *,
               normal_dir: str | None = None, abnormal_dir: str | None = None, mask_dir: str | None = None,
               normal_class: int | None = None, data_root: str | None = None, all_heatmaps: bool = False,
               heatmaps: bool = True, batch_size: int = 64, device: str = "cpu") -> ScoreReport:
    """Score DATA with a calibrated anomaly model and write the run folder (see module docstring)."""
    from aedetect.data.labelled import load_scoring_data

    det = AnomalyDetector.load(model, device=device)
    cfg = det.config_
    images = data if isinstance(data, ImageSet) else load_scoring_data(
        str(data), cfg.data, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
        normal_class=normal_class, data_root=data_root)
    run = new_run_dir(out, prefix="score")
    with progress_bar("scoring", total=len(images), hide_below=500) as bar:
        res = det.score(images, keep_images=heatmaps, batch_size=batch_size, on_batch=bar.advance)
    write_scores_csv(run / "scores.csv", images, res)
    metrics = compute_metrics(images, res)
    if metrics:
        metrics.update(model=str(model), data=str(data) if not isinstance(data, ImageSet) else "ImageSet",
                       threshold_rule=det.calibration_.get("threshold_rule"))
        write_text_atomic(run / "metrics.json", json.dumps(metrics, indent=2))
        labels = images.labels.numpy()  # type: ignore[union-attr]
        if both_classes(labels):
            save_curves(run, labels, res.scores, res.threshold)
    n_maps = 0
    if heatmaps:
        vmax = float(det.calibration_.get("map_display_max") or res.maps.max())
        which = np.ones(len(images), bool) if all_heatmaps else res.flags
        n_maps = write_heatmaps(run / "heatmaps", images, res, vmax, which)
    paths = images.paths or [str(i) for i in range(len(images))]
    return ScoreReport(out=run, n_images=len(images), n_flagged=int(res.flags.sum()),
                       n_errors=len(images.skipped), threshold=res.threshold, metrics=metrics,
                       heatmaps=n_maps, flagged_paths=[paths[i] for i in np.flatnonzero(res.flags)])
