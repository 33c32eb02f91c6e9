"""``aedetect score MODEL DATA --out DIR`` as a library call.

Writes, in a new folder:
  scores.csv       path,score,normalized_score,flag,label,kind,error (one row per file; an
                   unreadable file gets a row with only path and error)
  heatmaps/REL.png input | reconstruction | error map | overlay with the predicted-mask contour
                   (red; ground truth in green where known), titled, with score vs threshold
                   and the colour bar; REL is the image's path below DATA (MVTec: below
                   test/, e.g. crack/000.png); flagged images only unless all
  report.html      the page to read (aedetect.anomaly.evaluate.report), with gallery/ for the panels
                   of its gallery that heatmaps/ does not hold
  metrics.json     with labels: image_auroc, image_ap, f1_at_threshold, best_f1 (+ pixel_auroc,
                   aupro with masks), and the threshold used
  roc.png, pr.png  ROC and precision-recall curves (with labels of both classes)
  histogram.png    scores of normal and anomalous images, the threshold drawn
Score direction: higher = more anomalous; flag = score > the calibrated threshold.

A run streams batch by batch (see :func:`score_data`): memory does not grow with the number of
images, and an interrupted run leaves no scores.csv (never a partial one).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aedetect.data.imageset import ImageSet, source_name
from aedetect.anomaly.calibration.calfields import check_anomaly_model_file
from aedetect.anomaly.detector import AnomalyDetector
from aedetect.errors import DataError
from aedetect.util.fsutil import atomic_path, new_run_dir, write_text_atomic
from aedetect.util.outdir import writes_to
from aedetect.anomaly.evaluate.gallery import Gallery, GalleryItem
from aedetect.anomaly.evaluate.heatmap import heatmap_name, heatmap_panel, write_heatmap
from aedetect.anomaly.evaluate.kinds import KindPixels, kind_rows
from aedetect.anomaly.evaluate.metrics import PixelMetrics, both_classes, image_metrics
from aedetect.anomaly.calibration.reliability import reliability_line
from aedetect.anomaly.selection.selectreport import model_metrics
from aedetect.data.shard import Shard
from aedetect.util.csvsafe import SafeWriter
from aedetect.util.names import RunNames
from aedetect.util.text import printable, strict_json
from aedetect.anomaly.evaluate.report import write_report
from aedetect.anomaly.evaluate.reportplots import save_curves, save_histogram
from aedetect.anomaly.jobs.scoreopts import check_score_options
from aedetect.util.progress import progress_bar

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
    report: Path | None = None
    reliability: str | None = None  # how far the threshold's false-positive rate can be trusted


CSV_HEADER = ["path", "score", "normalized_score", "flag", "label", "kind", "error"]


SHARD_RECORD = "shard.json"
SHARD_PIXELS = "pixel_metrics.npz"


def write_shard_record(run: Path, shard: Shard, stream: Any, row_paths: list[str], pix: PixelMetrics | None,
                       kind_pix: KindPixels | None = None, **info: Any) -> None:
    """What merging needs beside a shard's scores.csv: the shard, the model, the unsharded
    position of each row (``row_paths``, in the CSV's order) and the pixel-metric sums (of
    the whole shard, and per defect kind as ``pixel_metrics-kind-N.npz``)."""
    kinds = list(kind_pix.acc) if kind_pix is not None else []
    record = {"format": 1, "shard": str(shard), "index": shard.index, "count": shard.count, **info,
              "labelled": stream.labelled, "with_masks": stream.with_masks,
              "all_anomalous_masked": stream.all_anomalous_masked, "any_masked": stream.any_masked,
              "pixel_kinds": kinds, "positions": [stream.positions[p] for p in row_paths]}
    sums = [(SHARD_PIXELS, pix)] + [(f"pixel_metrics-kind-{i}.npz", kind_pix.acc[k])  # type: ignore[union-attr]
                                    for i, k in enumerate(kinds)]
    for name, acc in sums:
        if acc is not None:
            with atomic_path(run / name) as tmp, open(tmp, "wb") as fh:
                acc.save(fh)
    write_text_atomic(run / SHARD_RECORD, strict_json(record))  # last: its presence means complete


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


def _panel(res: Any, gt: np.ndarray | None, j: int, vmax: float, threshold: float) -> np.ndarray:
    """Image ``j`` of a scored batch as a labelled heat-map panel."""
    return heatmap_panel(res.inputs[j], res.recon[j], res.maps[j], res.masks[j], vmax,
                         gt[j] if gt is not None else None, score=float(res.scores[j]), threshold=threshold)


def heatmap_root(data: str | ImageSet, normal_dir: str | None, abnormal_dir: str | None) -> Path | None:
    """The folder heat-map names are relative to: an MVTec AD category's ``test`` folder (so
    ``test/crack/000.png`` gives ``crack/000.png``), else DATA itself (its parent for one file);
    None for an ImageSet or a dataset by name."""
    if isinstance(data, ImageSet) or not Path(data).exists():
        return None
    from aedetect.data.sources import is_mvtec

    root = Path(data)
    if root.is_file():
        return root.parent
    return root / "test" if is_mvtec(root) and not (normal_dir or abnormal_dir) else root


def tiled_batches(cfg: Any, batch_size: int) -> tuple[int, int | None]:
    """(whole images a streamed batch, images a model pass: None = the whole batch). A tiled
    model's batch holds as many whole images as ``batch_size`` tiles' worth of pixels (at least
    one: a 2048x2048 image at 256-pixel tiles is scored alone), and a pass ``batch_size`` tiles,
    so memory stays about what ``batch_size`` untiled images take."""
    d = cfg.data
    if d.image_size is None or d.size is None:
        return batch_size, None
    ratio = (d.image_size[0] * d.image_size[1]) / (d.size[0] * d.size[1])
    return max(1, int(batch_size / ratio)), batch_size


def score_data(model: str | Path, data: str | ImageSet, out: str | Path | None = None, *,
               normal_dir: str | None = None, abnormal_dir: str | None = None, mask_dir: str | None = None,
               normal_class: int | None = None, data_root: str | None = None, all_heatmaps: bool = False,
               heatmaps: bool = True, batch_size: int = 64, device: str = "auto",
               max_images: int | None = None, report: bool = True, gallery_size: int = 24,
               shard: Shard | None = None) -> ScoreReport:
    """Score DATA with a calibrated anomaly model and write the run folder (see module docstring).

    Streams: each batch of ``batch_size`` images is decoded, scored, written to scores.csv (a
    temporary file, renamed into place at the end, so an interrupted run leaves no scores.csv)
    and to heat maps, then dropped. Kept for the whole set are per-image scalars only (path,
    score, normalised score, flag, label, kind; path and reason of unreadable files), and with
    ground-truth masks the pixel-metric sums of :class:`~aedetect.anomaly.evaluate.metrics.PixelMetrics`
    (one for the whole set and one per defect kind; no map is kept). Memory is therefore one
    batch of maps (and up to about three of decoded images, the next files being read
    meanwhile) plus the model, whatever the number of images; only a dataset by name (or a
    model without a fixed ``data.size``) is decoded whole up front. ``max_images``: only the
    first N files (or dataset images) are decoded and scored.
    Heat maps are coloured up to the calibration's ``map_display_max`` (a model without one:
    the largest map value of the first batch). ``report``: also write report.html (see
    :mod:`aedetect.anomaly.evaluate.report`) with a gallery of ``gallery_size`` images per section.
    ``shard``: score only that share of DATA and also write what :mod:`aedetect.anomaly.jobs.merge`
    needs to join the shards into one run (shard.json, pixel_metrics.npz).
    """
    # before any work:
    model = check_score_options(model, data, out, batch_size, max_images, (normal_dir, abnormal_dir, mask_dir))
    return run_score(model, data, out, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
                     normal_class=normal_class, data_root=data_root, all_heatmaps=all_heatmaps,
                     heatmaps=heatmaps, batch_size=batch_size, device=device, max_images=max_images,
                     report=report, gallery_size=gallery_size, shard=shard)


def run_score(model: str | Path, data: str | ImageSet, out: str | Path | None = None, *,
              normal_dir: str | None = None, abnormal_dir: str | None = None, mask_dir: str | None = None,
              normal_class: int | None = None, data_root: str | None = None, all_heatmaps: bool = False,
              heatmaps: bool = True, batch_size: int = 64, device: str = "auto",
              max_images: int | None = None, report: bool = True, gallery_size: int = 24,
              shard: Shard | None = None) -> ScoreReport:
    """:func:`score_data` for options that :func:`~aedetect.anomaly.jobs.scoreopts.check_score_options`
    has already checked where they entered (``aedetect score`` checks them before importing
    torch): each option is checked once on a path."""
    if shard is not None and isinstance(data, ImageSet):
        raise DataError("--shard: needs DATA as a folder or a dataset name, not images in memory")
    with writes_to(out if out is not None else "runs"):  # a write error names the run folder
        return _score(model, data, out, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
                      normal_class=normal_class, data_root=data_root, all_heatmaps=all_heatmaps,
                      heatmaps=heatmaps, batch_size=batch_size, device=device, max_images=max_images,
                      report=report, gallery_size=gallery_size, shard=shard)


def _score(model: str | Path, data: str | ImageSet, out: str | Path | None, *, normal_dir: str | None,
           abnormal_dir: str | None, mask_dir: str | None, normal_class: int | None, data_root: str | None,
           all_heatmaps: bool, heatmaps: bool, batch_size: int, device: str, max_images: int | None,
           report: bool, gallery_size: int, shard: Shard | None) -> ScoreReport:
    from aedetect.data.labelled import ImageSetStream, open_scoring_data

    # The file's one read: metadata, limits, calibration fields, before anything is built; the
    # model is then built from that record.
    det = AnomalyDetector.from_record(model, check_anomaly_model_file(model), device=device)
    cfg = det.config_
    stream = ImageSetStream(data if max_images is None else data.subset(list(range(min(max_images, len(data)))))) \
        if isinstance(data, ImageSet) else open_scoring_data(
        str(data), cfg.data, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
        normal_class=normal_class, data_root=data_root, max_images=max_images, shard=shard)
    root = heatmap_root(data, normal_dir, abnormal_dir)
    vmax = float(det.calibration_.get("map_display_max") or 0.0)  # else: the first batch's largest map value
    paths: list[str] = []
    scores: list[np.ndarray] = []
    flags: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    kinds: list[str] = []
    skipped: list[tuple[str, str]] = []
    # Binned (past its exact limit) from the model's pixel threshold: every shard of a sharded run alike.
    pix = PixelMetrics(origin=det.pixel_threshold_) if stream.with_masks else None
    kind_pix = KindPixels(stream.anomalous_kinds(), origin=det.pixel_threshold_) if stream.with_masks else None
    n_maps = n_flagged = 0
    run: Path | None = None
    gallery: Gallery | None = None
    names = RunNames()  # no two images share a panel name
    # A tiled model: fewer whole images a batch (each is many tiles at full resolution), and
    # batch_size tiles a model pass (aedetect.anomaly.maps.tiles).
    per_batch, per_pass = tiled_batches(cfg, batch_size)
    with contextlib.ExitStack() as stack, progress_bar("scoring", total=stream.n_files, hide_below=500) as bar:
        for batch in stream.batches(per_batch):
            skipped += batch.skipped
            bar.advance(len(batch) + len(batch.skipped))
            if not len(batch):
                continue
            if run is None:  # made at the first readable image: a folder of unreadable files leaves nothing
                run = new_run_dir(out, prefix="score")
                gallery = Gallery(run, gallery_size)
                fh = stack.enter_context(open(stack.enter_context(atomic_path(run / "scores.csv")), "w", newline="",
                                              encoding="utf-8", errors="surrogateescape"))
                csv_out = SafeWriter(fh)  # a file name is never a live formula
                csv_out.writerow(CSV_HEADER)
            res = det.score(batch, keep_images=heatmaps, batch_size=per_pass or len(batch))
            n0 = len(paths)
            paths += batch.paths
            scores.append(res.scores)
            flags.append(res.flags)
            n_flagged += int(res.flags.sum())
            lab = batch.labels.numpy() if batch.labels is not None else None
            kinds += batch.kinds if batch.kinds else [""] * len(batch)
            if lab is not None:
                labels.append(lab)
            for j, p in enumerate(batch.paths):
                csv_out.writerow([printable(p), f"{res.scores[j]:.8g}", f"{res.normalized[j]:.6f}", int(res.flags[j]),
                                  "" if lab is None else int(lab[j]), printable(batch.kinds[j]) if batch.kinds else "", ""])
            gt = batch.masks[:, 0].numpy() if batch.masks is not None else None
            if pix is not None and gt is not None:
                pix.add(gt, res.maps)
                kind_pix.add(gt, res.maps, lab, batch.kinds)  # type: ignore[union-attr,arg-type]
            if heatmaps:
                vmax = vmax or float(res.maps.max())
            for j in range(len(batch)):
                name = heatmap_name(batch.paths[j], root, n0 + j, names)
                wanted = heatmaps and (all_heatmaps or bool(res.flags[j]))
                draw = functools.partial(_panel, res, gt, j, vmax, det.threshold_)  # called at once, never kept
                if wanted:
                    write_heatmap(run / "heatmaps" / name, draw())
                    n_maps += 1
                if report:
                    item = GalleryItem(index=n0 + j, path=batch.paths[j], score=float(res.scores[j]),
                                       flag=bool(res.flags[j]), label=None if lab is None else int(lab[j]),
                                       kind=batch.kinds[j] if batch.kinds else "", panel=None)
                    gallery.offer(item, name, wanted, draw if heatmaps else None)  # type: ignore[union-attr]
                del draw
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
    plots: list[str] = []
    rows = kind_rows(all_scores, all_labels, all_flags, kinds,  # type: ignore[arg-type]
                     kind_pix if stream.masks_ok else None) if all_labels is not None and any(kinds) else []
    if metrics:
        metrics.update(model=printable(model), data=source_name(data),
                       threshold_rule=det.calibration_.get("threshold_rule"), **model_metrics(det.calibration_))
        if rows:
            metrics["per_kind"] = [r.as_dict() for r in rows]
        write_text_atomic(run / "metrics.json", strict_json(metrics, indent=2))
        if both_classes(all_labels):
            save_curves(run, all_labels, all_scores, det.threshold_)  # type: ignore[arg-type]
            plots += ["roc.png", "pr.png"]
    if report:
        save_histogram(run / "histogram.png", all_scores, all_labels, det.threshold_)
        summary = {"model": str(model), "data": str(data) if not isinstance(data, ImageSet) else "ImageSet",
                   "images scored": len(paths), "flagged (score > threshold)": n_flagged,
                   "unreadable files": len(skipped), "threshold": f"{det.threshold_:.6g}",
                   "threshold rule": det.calibration_.get("threshold_rule", "?"),
                   "scores": "scores.csv (one row per file)"}
        write_report(run / "report.html", summary=summary, metrics=metrics, plots=[*plots, "histogram.png"],
                     kinds=rows, top=gallery.top(), top_normals=gallery.top_normals(),  # type: ignore[union-attr]
                     threshold=det.threshold_, skipped=skipped)
    if shard is not None:
        write_shard_record(run, shard, stream, paths + [p for p, _ in skipped], pix, kind_pix,
                           model=printable(model), data=printable(data), threshold=det.threshold_,
                           pixel_threshold=det.pixel_threshold_, threshold_rule=det.calibration_.get("threshold_rule"),
                           model_metrics=model_metrics(det.calibration_))
    return ScoreReport(out=run, n_images=len(paths), n_flagged=n_flagged,
                       n_errors=len(skipped), threshold=det.threshold_, metrics=metrics,
                       heatmaps=n_maps, flagged_paths=[paths[i] for i in np.flatnonzero(all_flags)],
                       report=run / "report.html" if report else None, reliability=reliability_line(det.calibration_))
