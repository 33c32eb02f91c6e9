"""``aedetect calibrate MODEL DATA --out NEW_MODEL`` as a library call: re-set the flag threshold.

``fit`` can only calibrate on normal images (it has no others): the threshold is set for a target
false-positive rate. Once some labelled anomalies exist, the operating point a user usually wants
is the F1-optimal one on them; until now that was reachable only from Python
(``AnomalyDetector.fit(images, validation=...)``), and only by retraining. This module re-sets
the threshold of an already trained model on a labelled validation set, without touching the
weights:

* ``rule="f1"`` (default): the image threshold that maximises F1 on DATA (needs both classes).
* ``rule="fpr"``: the threshold for ``target_fpr`` on DATA's normal images only (anomalous
  images, if any, are used for the report, never for the threshold).

DATA is read exactly as ``aedetect score`` reads it (:func:`aedetect.data.labelled.load_scoring_data`)
and scored by the same code (:meth:`AnomalyDetector.score`: ``run_model`` + ``combine_scores``),
so the new threshold is on the same scale that ``score`` compares against. The spread of the
normalised score is re-fitted on DATA's normal images, so the threshold still maps to 0.5.

Pixel threshold: with ground-truth masks and ``rule="f1"``, it is set F1-optimally over all pixels
of DATA (a random sample of 2,000,000 pixels when there are more); otherwise it is left as fitted.

The result is a NEW model file (same weights, config and training record; only ``calibration``
changes), written atomically by :func:`aedetect.core.modelfile.file.save_model`. An existing output path
is refused and the input model file is never written to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aedetect.data.imageset import ImageSet, source_name
from aedetect.anomaly.jobs.scoreopts import CALIBRATION_RULES as RULES
from aedetect.anomaly.jobs.scoreopts import check_calibrate_options, check_new_file, check_target_fpr
from aedetect.errors import ConfigError, DataError
from aedetect.util.text import printable
from aedetect.util.outdir import remove_orphans, writes_to

log = logging.getLogger("aedetect")

PIXEL_SAMPLE = 2_000_000  # pixels; the PR curve over more is slow and changes the optimum little
# Metadata keys that save_model writes itself; every other key of the input file is carried over.
_WRITER_KEYS = ("format", "format_version", "aedetect_version", "sha256", "record_sha256", "training", "calibration")


@dataclass
class CalibrationReport:
    """What a calibrate run changed and how both thresholds do on DATA (the CLI prints it).

    F1 values are None when DATA has only one class; FPR values are on DATA's normal images.
    """

    out: Path
    rule: str
    n_images: int
    n_normal: int
    n_anomalous: int
    old_threshold: float
    new_threshold: float
    old_f1: float | None
    new_f1: float | None
    old_fpr: float
    new_fpr: float
    old_pixel_threshold: float
    new_pixel_threshold: float
    old_pixel_f1: float | None = None
    new_pixel_f1: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)


def _fpr(normal_scores: np.ndarray, threshold: float) -> float:
    """Share of normal scores flagged (both rules guarantee at least one normal image)."""
    return float((normal_scores > threshold).mean())


def _pixel_sample(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, m = (masks > 0).ravel(), maps.ravel()
    if y.size > PIXEL_SAMPLE:
        keep = np.random.default_rng(0).choice(y.size, PIXEL_SAMPLE, replace=False)
        y, m = y[keep], m[keep]
    return y.astype(np.int64), m


def new_calibration(calibration: dict[str, Any], labels: np.ndarray, scores: np.ndarray, rule: str,
                    target_fpr: float = 0.01) -> dict[str, Any]:
    """The calibration record with the image threshold re-set on labelled scores by ``rule``.

    Reuses the fit-time helpers (``f1_threshold``, ``set_fpr_threshold``), so
    the record has the same keys and meaning as one written by ``fit``.
    """
    from aedetect.anomaly.evaluate.metrics import both_classes
    from aedetect.anomaly.calibration.threshold import f1_threshold, set_fpr_threshold

    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    normal = scores[labels == 0]
    # The fit-time finding that the calibration images overlapped the training ones is about
    # the threshold this replaces; the new one's interval counts DATA's normal images.
    calibration = {k: v for k, v in calibration.items() if k != "overlap_with_training"}
    calibration["calib_images"] = int(normal.size)
    if rule == "f1":
        if not both_classes(labels):
            raise DataError(f"--rule f1 needs normal and anomalous images in DATA (got {int((labels == 0).sum())} "
                            f"normal, {int((labels == 1).sum())} anomalous); use --rule fpr with normal images only")
        return f1_threshold(calibration, labels, scores)
    if rule != "fpr":
        raise ConfigError(f"--rule: {rule!r} is not one of {', '.join(RULES)}")
    check_target_fpr(target_fpr)
    if normal.size == 0:
        raise DataError("--rule fpr needs normal images in DATA (label 0: test/good, --normal-dir, "
                        "or the --normal-class of a dataset)")
    cal = dict(calibration)
    cal.pop("validation_best_f1", None)  # from an earlier F1 calibration: no longer this threshold's
    set_fpr_threshold(cal, normal, target_fpr, "calibrate")
    cal["target_fpr"] = float(target_fpr)
    cal["settings"] = {**cal.get("settings", {}), "target_fpr": float(target_fpr)}
    return cal


def recalibrate(model: str | Path, data: str | ImageSet, out: str | Path, *, rule: str = "f1",
                target_fpr: float = 0.01, normal_dir: str | None = None, abnormal_dir: str | None = None,
                mask_dir: str | None = None, normal_class: int | None = None, data_root: str | None = None,
                batch_size: int = 64, device: str = "auto") -> CalibrationReport:
    """Re-set MODEL's thresholds on the labelled set DATA and write them to the new file ``out``.

    DATA and the ``*_dir``/``normal_class``/``data_root`` options mean what they mean for
    ``aedetect score`` (see :mod:`aedetect.data.labelled`). See the module docstring for the rules.
    """
    from aedetect.core.modelfile.file import save_model
    from aedetect.data.labelled import load_scoring_data
    from aedetect.anomaly.calibration.calfields import check_anomaly_model_file
    from aedetect.anomaly.detector import AnomalyDetector
    from aedetect.anomaly.evaluate.metrics import best_f1, both_classes, f1_at_threshold
    from aedetect.util.progress import progress_bar

    model = check_calibrate_options(model, out, rule, target_fpr, batch_size)  # before any image is decoded
    # The file's one read: metadata, limits, calibration fields, before anything is built; the
    # model is then built from that record.
    det = AnomalyDetector.from_record(model, check_anomaly_model_file(model), device=device)
    meta = det.metadata_
    images = data if isinstance(data, ImageSet) else load_scoring_data(
        str(data), det.config_.data, normal_dir=normal_dir, abnormal_dir=abnormal_dir, mask_dir=mask_dir,
        normal_class=normal_class, data_root=data_root)
    if images.labels is None and rule == "fpr":  # a plain folder of good images: all normal
        log.info("%s: no labels; its %d images are taken as normal for --rule fpr", printable(str(data)), len(images))
        labels = np.zeros(len(images), dtype=np.int64)
    elif images.labels is None:
        raise DataError(f"{data}: no labels; give an MVTec AD folder (test/good + test/<kind>), "
                        "--normal-dir/--abnormal-dir, or a dataset name with --normal-class "
                        "(or, with normal images only, --rule fpr)")
    else:
        labels = images.labels.numpy()
    with progress_bar("scoring", total=len(images), hide_below=500) as bar:
        res = det.score(images, keep_images=False, batch_size=batch_size, on_batch=bar.advance)
    old = det.calibration_
    cal = new_calibration(old, labels, res.scores, rule, target_fpr)

    two = both_classes(labels)
    normal = res.scores[labels == 0]
    old_t, new_t = float(old["threshold"]), float(cal["threshold"])
    old_f1 = f1_at_threshold(labels, res.scores, old_t) if two else None
    new_f1 = f1_at_threshold(labels, res.scores, new_t) if two else None

    old_pt = new_pt = float(old["pixel_threshold"])
    old_pf1 = new_pf1 = None
    if images.masks is not None and rule == "f1":
        y, m = _pixel_sample(images.masks[:, 0].numpy(), res.maps)
        if both_classes(y):
            new_pf1, new_pt = best_f1(y, m)
            old_pf1 = f1_at_threshold(y, m, old_pt)
            cal.update(pixel_threshold=float(new_pt), pixel_threshold_rule="f1",
                       validation_pixel_best_f1=float(new_pf1))

    # Flat keys (not one nested record), so `aedetect info` shows each in its table.
    cal.update(validation_data=source_name(data),
               validation_images=len(images), validation_normal=int((labels == 0).sum()),
               validation_anomalous=int((labels == 1).sum()), validation_f1=new_f1,
               validation_fpr=_fpr(normal, new_t), previous_threshold=old_t,
               previous_threshold_rule=old.get("threshold_rule"), recalibrated_from=printable(model))
    check_new_file(out)  # again: scoring may take long enough for another process to create it
    extra = {k: v for k, v in meta.items() if k not in _WRITER_KEYS}
    remove_orphans(Path(out).parent, recursive=False)  # of an earlier calibrate killed mid-write
    with writes_to(out):  # a full disk or a read-only folder: one line naming the file
        save_model(out, det.model_, det.config_, training=meta.get("training"), calibration=cal, extra=extra,
                   overwrite=False)
    return CalibrationReport(
        out=Path(out), rule=rule, n_images=len(images), n_normal=int((labels == 0).sum()),
        n_anomalous=int((labels == 1).sum()), old_threshold=old_t, new_threshold=new_t, old_f1=old_f1,
        new_f1=new_f1, old_fpr=_fpr(normal, old_t), new_fpr=_fpr(normal, new_t), old_pixel_threshold=old_pt,
        new_pixel_threshold=float(new_pt), old_pixel_f1=old_pf1, new_pixel_f1=new_pf1, calibration=cal)
