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

A run streams batch by batch (see :func:`score_data`): memory does not grow with the number of
images, and an interrupted run leaves no scores.csv (never a partial one).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aedetect.data.imageset import ImageSet
from aedetect.data.shard import Shard
from aedetect.anomaly.detector import AnomalyDetector
from aedetect.errors import DataError
from aedetect.util.fsutil import atomic_path, check_new_dir, new_run_dir, write_text_atomic
from aedetect.anomaly.metrics import PixelMetrics, both_classes, image_metrics
from aedetect.anomaly.reliability import reliability_line
from aedetect.core.plots import upscale_factor
from aedetect.util.progress import progress_bar
from aedetect.util.text import printable

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
    reliability: str | None = None  # how far the threshold's false-positive rate can be trusted


CSV_HEADER = ["path", "score", "normalized_score", "flag", "label", "kind", "error"]


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


def write_heatmap(folder: Path, index: int, path: str, inp: np.ndarray, rec: np.ndarray, m: np.ndarray,
                  pred: np.ndarray, vmax: float, gt: np.ndarray | None = None) -> None:
    """One heat-map panel as ``folder/NNNNN_<name>.png`` (written atomically)."""
    from PIL import Image

    panel = heatmap_panel(inp, rec, m, pred, vmax, gt)
    with atomic_path(folder / _safe_name(index, path)) as tmp:
        Image.fromarray(panel).save(tmp, format="PNG")


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


SHARD_RECORD = "shard.json"
SHARD_PIXELS = "pixel_metrics.npz"


def write_shard_record(run: Path, shard: Shard, stream: Any, row_paths: list[str], pix: PixelMetrics | None,
                       **info: Any) -> None:
    """What merging needs beside a shard's scores.csv: the shard, the model, the unsharded
    position of each row (``row_paths``, in the CSV's order) and the pixel-metric sums."""
    record = {"format": 1, "shard": str(shard), "index": shard.index, "count": shard.count, **info,
              "labelled": stream.labelled, "with_masks": stream.with_masks,
              "all_anomalous_masked": stream.all_anomalous_masked, "any_masked": stream.any_masked,
              "positions": [stream.positions[p] for p in row_paths]}
    write_text_atomic(run / SHARD_RECORD, json.dumps(record))
    if pix is not None:
        with atomic_path(run / SHARD_PIXELS) as tmp:
            with open(tmp, "wb") as fh:
                pix.save(fh)


def compute_metrics(labels: np.ndarray | None, scores: np.ndarray, threshold: float,
                    pixel: dict[str, float] | None = None, pixel_threshold: float | None = None) -> dict[str, Any]:
    """The metrics.json record (empty without labels); ``pixel``: :class:`PixelMetrics` result,
    None without masks."""
    if labels is None:
        return {}
    out: dict[str, Any] = {"threshold": threshold, **image_metrics(labels, scores, threshold)}
    if pixel is not None:
        out.update(pixel)
        out["pixel_threshold"] = pixel_threshold
    return out


def score_data(model: str | Path, data: str | ImageSet, out: str | Path | None = None, *,
               normal_dir: str | None = None, abnormal_dir: str | None = None, mask_dir: str | None = None,
               normal_class: int | None = None, data_root: str | None = None, all_heatmaps: bool = False,
               heatmaps: bool = True, batch_size: int = 64, device: str = "auto",
               shard: Shard | None = None) -> ScoreReport:
    """Score DATA with a calibrated anomaly model and write the run folder (see module docstring).

    Streams: each batch of ``batch_size`` images is decoded, scored, written to scores.csv (a
    temporary file, renamed into place at the end, so an interrupted run leaves no scores.csv)
    and to heat maps, then dropped. Kept for the whole set are per-image scalars only (path,
    score, normalised score, flag, label; path and reason of unreadable files), and with
    ground-truth masks what :class:`~aedetect.anomaly.metrics.PixelMetrics` needs (the values of
    up to 2**21 map pixels for exact figures, then 12.6 MB of bins however many images). Memory is therefore one batch of maps (and up to
    about three of decoded images, the next files being read meanwhile) plus the model,
    whatever the number of images; only a dataset by name (or a model without a fixed
    ``data.size``) is decoded whole up front.
    Heat maps are coloured up to the calibration's ``map_display_max`` (a model without one:
    the largest map value of the first batch).
    ``shard``: score only that share of DATA and also write what :mod:`aedetect.anomaly.merge`
    needs to join the shards into one run (shard.json, pixel_metrics.npz).
    """
    from aedetect.data.labelled import ImageSetStream, open_scoring_data

    check_new_dir(out)  # refuse a used --out before any work
    if shard is not None and isinstance(data, ImageSet):
        raise DataError("--shard: needs DATA as a folder or a dataset name, not images in memory")
    det = AnomalyDetector.load(model, device=device)
    cfg = det.config_
    stream = ImageSetStream(data) if isinstance(data, ImageSet) else open_scoring_data(
        str(data), cfg.data, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
        normal_class=normal_class, data_root=data_root, shard=shard)
    vmax = float(det.calibration_.get("map_display_max") or 0.0)  # else: the first batch's largest map value
    paths: list[str] = []
    scores: list[np.ndarray] = []
    flags: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    # Binned (past its exact limit) from the model's pixel threshold: every shard of a sharded run alike.
    pix = PixelMetrics(origin=det.pixel_threshold_) if stream.with_masks else None
    n_maps = n_flagged = 0
    run: Path | None = None
    with contextlib.ExitStack() as stack, progress_bar("scoring", total=stream.n_files, hide_below=500) as bar:
        for batch in stream.batches(batch_size):
            skipped += batch.skipped
            bar.advance(len(batch) + len(batch.skipped))
            if not len(batch):
                continue
            if run is None:  # made at the first readable image: a folder of unreadable files leaves nothing
                run = new_run_dir(out, prefix="score")
                fh = stack.enter_context(open(stack.enter_context(atomic_path(run / "scores.csv")), "w", newline="",
                                                encoding="utf-8"))
                csv_out = csv.writer(fh)
                csv_out.writerow(CSV_HEADER)
            res = det.score(batch, keep_images=heatmaps, batch_size=len(batch))
            n0 = len(paths)
            paths += batch.paths
            scores.append(res.scores)
            flags.append(res.flags)
            n_flagged += int(res.flags.sum())
            lab = batch.labels.numpy() if batch.labels is not None else None
            if lab is not None:
                labels.append(lab)
            for j, p in enumerate(batch.paths):
                csv_out.writerow([printable(p), f"{res.scores[j]:.8g}", f"{res.normalized[j]:.6f}", int(res.flags[j]),
                                  "" if lab is None else int(lab[j]), printable(batch.kinds[j]) if batch.kinds else "", ""])
            gt = batch.masks[:, 0].numpy() if batch.masks is not None else None
            if pix is not None and gt is not None:
                pix.add(gt, res.maps)
            if heatmaps:
                vmax = vmax or float(res.maps.max())
                for j in (range(len(batch)) if all_heatmaps else np.flatnonzero(res.flags)):
                    write_heatmap(run / "heatmaps", n0 + j, batch.paths[j], res.inputs[j],  # type: ignore[index]
                                  res.recon[j], res.maps[j], res.masks[j], vmax,  # type: ignore[index]
                                  gt[j] if gt is not None else None)
                    n_maps += 1
            bar.update(info=f"flagged {n_flagged}")
            del res, batch, gt
        if run is None:  # a FileStream has raised already; this is an empty ImageSet
            raise DataError("no images to score")
        for p, reason in skipped:
            csv_out.writerow([printable(p), "", "", "", "", "", printable(reason)])
    all_scores, all_flags = np.concatenate(scores), np.concatenate(flags)
    all_labels = np.concatenate(labels) if stream.labelled else None
    metrics = compute_metrics(all_labels, all_scores, det.threshold_,
                              pix.result() if pix is not None and stream.masks_ok else None,
                              det.pixel_threshold_)
    if metrics:
        metrics.update(model=printable(model), data=printable(data) if not isinstance(data, ImageSet) else "ImageSet",
                       threshold_rule=det.calibration_.get("threshold_rule"))
        write_text_atomic(run / "metrics.json", json.dumps(metrics, indent=2))
        if both_classes(all_labels):
            save_curves(run, all_labels, all_scores, det.threshold_)  # type: ignore[arg-type]
    if shard is not None:
        write_shard_record(run, shard, stream, paths + [p for p, _ in skipped], pix,
                           model=str(model), data=str(data), threshold=det.threshold_,
                           pixel_threshold=det.pixel_threshold_, threshold_rule=det.calibration_.get("threshold_rule"))
    return ScoreReport(out=run, n_images=len(paths), n_flagged=n_flagged,
                       n_errors=len(skipped), threshold=det.threshold_, metrics=metrics,
                       heatmaps=n_maps, flagged_paths=[paths[i] for i in np.flatnonzero(all_flags)],
                       reliability=reliability_line(det.calibration_))
