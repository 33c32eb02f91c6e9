"""Join the run folders of ``aedetect score --shard K/N`` jobs into the run one process writes.

Each shard wrote scores.csv for its share of the files, and shard.json with the position of
every row in the unsharded order (see :func:`aedetect.anomaly.jobs.score.write_shard_record`).
Joining puts the readable rows back in that order and the unreadable ones after them, as
one process writes them; metrics.json is computed again from the joined scores and labels,
and pixel AUROC / AUPRO from the summed pixel-metric bins (never averaged over shards), so
it equals one process's figures. Heat maps are copied, renumbered to the joined order.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from aedetect.anomaly.evaluate.kinds import KindPixels, kind_rows
from aedetect.anomaly.evaluate.metrics import PixelMetrics, both_classes
from aedetect.anomaly.jobs.score import (CSV_HEADER, SHARD_PIXELS, SHARD_RECORD, ScoreReport, compute_metrics,
                                    save_curves)
from aedetect.errors import DataError
from aedetect.util.csvsafe import SafeWriter
from aedetect.util.text import strict_json
from aedetect.util.fsutil import atomic_path, check_new_dir, new_run_dir, write_text_atomic

_INDEXED = re.compile(r"^(\d{5})_(.*)$")


def _read_shard(folder: Path) -> tuple[dict[str, Any], list[list[str]]]:
    rec_path, csv_path = folder / SHARD_RECORD, folder / "scores.csv"
    if not rec_path.is_file() or not csv_path.is_file():
        raise DataError(f"{folder}: not a finished shard of aedetect score --shard (no {SHARD_RECORD} or scores.csv)")
    try:
        rec = json.loads(rec_path.read_text())
        with open(csv_path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, ValueError, csv.Error) as e:
        raise DataError(f"{folder}: cannot read the shard: {e}") from None
    _check_record(folder, rec)
    if not rows or rows[0] != CSV_HEADER or len(rows) - 1 != len(rec["positions"]):
        raise DataError(f"{folder}: scores.csv does not match {SHARD_RECORD} (edited or from another run?)")
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(CSV_HEADER) or (not row[6] and not _is_number(row[1])) or (
                rec["labelled"] and not row[6] and row[4] not in ("0", "1")):
            raise DataError(f"{folder}/scores.csv: line {i} is not a row of aedetect score (edited?)")
    return rec, rows[1:]


# What merging reads of a shard record, and the type it must have: a shard folder is input
# (copied, edited, or made by hand), so a missing key or a wrong type is one line, not a KeyError.
_RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "shard": str, "index": int, "count": int, "positions": list, "threshold": (int, float),
    "labelled": bool, "with_masks": bool, "all_anomalous_masked": bool, "any_masked": bool,
}


def _check_record(folder: Path, rec: Any) -> None:
    if not isinstance(rec, dict):
        raise DataError(f"{folder}/{SHARD_RECORD}: not a JSON object (edited or not written by aedetect score --shard)")
    for key, kind in _RECORD_TYPES.items():
        if not isinstance(rec.get(key), kind) or (kind is int and isinstance(rec.get(key), bool)):
            raise DataError(f"{folder}/{SHARD_RECORD}: {key} is {rec.get(key)!r} (edited or not written by "
                            "aedetect score --shard)")
    if not 0 <= rec["index"] < rec["count"] or not all(
            isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in rec["positions"]):
        raise DataError(f"{folder}/{SHARD_RECORD}: index or positions out of range")
    kinds = rec.get("pixel_kinds", [])
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise DataError(f"{folder}/{SHARD_RECORD}: pixel_kinds is not a list of names")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _check_complete(records: list[tuple[Path, dict[str, Any]]]) -> None:
    """Every shard 0..N-1 exactly once, all from the same model, data and threshold."""
    first = records[0][1]
    for folder, rec in records:
        for key in ("count", "model", "data", "threshold"):
            if rec.get(key) != first.get(key):
                raise DataError(f"{folder}: {key} {rec.get(key)!r} differs from {records[0][0]}'s {first.get(key)!r}")
    seen: dict[int, Path] = {}
    for folder, rec in records:
        if rec["index"] in seen:
            raise DataError(f"{folder}: shard {rec['shard']} is also {seen[rec['index']]}")
        seen[rec["index"]] = folder
    count = first["count"]
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise DataError(f"shards {', '.join(f'{k}/{count}' for k in missing)} are missing")


def merge_scores(shards: list[str | Path], out: str | Path | None = None, copy_heatmaps: bool = True) -> ScoreReport:
    """Join shard run folders into a new run folder ``out`` (scores.csv, metrics.json, curves, heat maps)."""
    if not shards:
        raise DataError("merge: give the run folders of the shards")
    check_new_dir(out)
    folders = [Path(s) for s in shards]
    read = [(f, *_read_shard(f)) for f in folders]
    _check_complete([(f, rec) for f, rec, _ in read])
    good: list[tuple[int, list[str]]] = []
    bad: list[tuple[int, list[str]]] = []
    local_to_row: dict[tuple[int, int], int] = {}  # (shard, local readable index) -> position
    for k, (_, rec, rows) in enumerate(read):
        n_good = 0
        for pos, row in zip(rec["positions"], rows):
            if row[6]:
                bad.append((pos, row))
            else:
                local_to_row[(k, n_good)] = pos
                good.append((pos, row))
                n_good += 1
    good.sort(key=lambda r: r[0])
    bad.sort(key=lambda r: r[0])
    merged_index = {pos: i for i, (pos, _) in enumerate(good)}
    run = new_run_dir(out, prefix="score")
    with atomic_path(run / "scores.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = SafeWriter(fh)  # a shard's cells are text from a folder: neutralised again
        w.writerow(CSV_HEADER)
        w.writerows(row for _, row in good + bad)
    first = read[0][1]
    scores = np.array([float(r[1]) for _, r in good])
    flags = np.array([r[3] == "1" for _, r in good], dtype=bool)
    labels = np.array([int(r[4]) for _, r in good]) if first["labelled"] else None
    pixel = None
    if all(rec["with_masks"] for _, rec, _ in read):
        sums = [f / SHARD_PIXELS for f, _, _ in read]
        ok = all(rec["all_anomalous_masked"] for _, rec, _ in read) and any(rec["any_masked"] for _, rec, _ in read)
        if ok and all(p.is_file() for p in sums):
            acc = PixelMetrics.load(sums[0])
            for p in sums[1:]:
                acc.merge(PixelMetrics.load(p))
            pixel = acc.result()
    metrics = compute_metrics(labels, scores, first["threshold"], pixel, first.get("pixel_threshold"))
    kinds = [r[5] for _, r in good]
    rows = kind_rows(scores, labels, flags, kinds, _kind_pixels(read) if pixel is not None else None) \
        if labels is not None and any(kinds) else []
    if metrics:
        metrics.update(model=first["model"], data=first["data"], threshold_rule=first.get("threshold_rule"),
                       **first.get("model_metrics", {}))
        if rows:
            metrics["per_kind"] = [r.as_dict() for r in rows]
        write_text_atomic(run / "metrics.json", strict_json(metrics, indent=2))
        if both_classes(labels):
            save_curves(run, labels, scores, first["threshold"])  # type: ignore[arg-type]
    n_maps = _copy_heatmaps(folders, run / "heatmaps", local_to_row, merged_index) if copy_heatmaps else 0
    return ScoreReport(out=run, n_images=len(good), n_flagged=int(flags.sum()), n_errors=len(bad),
                       threshold=first["threshold"], metrics=metrics, heatmaps=n_maps,
                       flagged_paths=[r[0] for _, r in good if r[3] == "1"])


def _kind_pixels(read: list[tuple[Path, dict[str, Any], list[list[str]]]]) -> KindPixels:
    """Every shard's per-kind pixel sums, added kind by kind."""
    kp = KindPixels([])
    for folder, rec, _ in read:
        for i, kind in enumerate(rec.get("pixel_kinds", [])):
            acc = PixelMetrics.load(folder / f"pixel_metrics-kind-{i}.npz")
            kp.acc[kind] = kp.acc[kind].merge(acc) if kind in kp.acc else acc
    return kp


def _heatmap_files(src: Path) -> list[Path]:
    """The PNG files below a shard's heatmaps/, links not followed: a link planted in a shard
    folder (to /etc/shadow, to another user's files) is never copied into the joined run."""
    found = []
    for root, dirs, files in os.walk(src, followlinks=False):
        for name in files:
            p = Path(root) / name
            if name.lower().endswith(".png") and not p.is_symlink() and p.is_file():
                found.append(p)
    return sorted(found)


def _copy_heatmaps(folders: list[Path], dest: Path, local_to_row: dict[tuple[int, int], int],
                   merged_index: dict[int, int]) -> int:
    """Copy every shard's heat maps; a name numbered by the shard's row is renumbered to the
    joined order, so the names equal one process's."""
    n = 0
    for k, folder in enumerate(folders):
        src = folder / "heatmaps"
        if not src.is_dir():
            continue
        for f in _heatmap_files(src):
            rel = f.relative_to(src)
            m = _INDEXED.match(rel.name)
            if m and (k, int(m.group(1))) in local_to_row:
                rel = rel.with_name(f"{merged_index[local_to_row[(k, int(m.group(1)))]]:05d}_{m.group(2)}")
            target = dest / rel
            if target.exists():
                raise DataError(f"{f}: heat map {rel} comes from two shards")
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(f, tmp)
            n += 1
    return n
