"""``aedetect denoise`` as a library call: a file or a folder tree in, a mirrored tree out.

Safety rules, in order of importance:
  * inputs are only ever read; an output path that resolves to an input is refused, and so is
    an output folder inside the input folder (a re-run would denoise its own outputs);
  * an existing output is skipped unless ``overwrite`` (so an interrupted run resumes), and the
    metrics CSV is refused if its path exists (unless ``overwrite``) or lies in the input tree;
  * every output is written atomically (temporary file, checked complete, then rename);
  * a file that cannot be read or written is one warning line, and the run goes on.
"""

from __future__ import annotations

import errno
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aedetect.data.shard import Shard
from aedetect.data.io import ImageReadError, read_image, write_image_atomic
from aedetect.data.sources import find_images
from aedetect.denoise.denoiser import Denoiser
from aedetect.errors import DataError, OutputError, OutputExistsError
from aedetect.util.csvsafe import SafeDictWriter
from aedetect.util.fsutil import write_text_atomic
from aedetect.util.outdir import OutputPathError, check_may_write, check_not_inside, input_holding, remove_orphans
from aedetect.util.progress import progress_bar
from aedetect.util.text import printable

log = logging.getLogger("aedetect")


@dataclass
class DenoiseReport:
    """What a run did: relative paths done / skipped / failed (with the reason), and metrics."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    csv_path: Path | None = None

    def mean(self, key: str) -> float | None:
        v = [m[key] for m in self.metrics if isinstance(m.get(key), float)]
        return float(np.mean(v)) if v else None


def plan(input_path: Path, out: Path) -> list[tuple[Path, Path, str]]:
    """(source, target, relative name) for every image; refuses layouts that could touch inputs."""
    if not input_path.exists():
        raise DataError(f"{input_path}: no such file or folder")
    src_root = input_path if input_path.is_dir() else input_path.parent
    check_not_inside(out, input_path)
    files = find_images(input_path)
    if not files:
        raise DataError(f"{input_path}: no image files found")
    jobs = []
    for f in files:
        rel = f.relative_to(src_root)
        target = out / rel
        # Every target, not only --out: an --out that holds the input folder maps a nested
        # input (in/in/x.png) onto another input (in/x.png).
        if input_holding(target, [input_path]) is not None:
            raise OutputPathError(f"--out {out}: would write {target} inside the input {input_path}; "
                                  "choose an --out outside it")
        jobs.append((f, target, rel.as_posix()))
    return jobs


# A write that fails for one of these fails for every file after it: the run stops there.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def stops_the_run(e: OSError, target: Path, out: Path) -> bool:
    """True for a failed write that no later file can escape: a full disk or quota, a read-only
    file system, or an --out (not one sub-folder of it) that cannot be written."""
    if e.errno in DISK_ERRNOS:
        return True
    if e.errno in (errno.EACCES, errno.EPERM):
        first = next((a for a in [target.parent, *target.parent.parents] if a.exists()), None)
        return first is not None and (first == out or first in out.parents)
    return False


def check_csv_target(csv_path: Path, input_path: Path, overwrite: bool) -> None:
    """The metrics CSV obeys the rule of every output: never written over an existing file
    (an input image included) unless ``overwrite``, and never inside the input tree."""
    check_may_write(csv_path, [input_path], "--csv")
    if csv_path.exists() and not overwrite:
        raise DataError(f"--csv {csv_path}: already exists; not written over (use --overwrite to replace it)")


def image_metrics(ref: np.ndarray, out: np.ndarray, noisy: np.ndarray | None, max_value: float) -> dict[str, Any]:
    """PSNR (data_range = the format's maximum) and SSIM of the output, and of the input if given."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    def colour(a: np.ndarray) -> np.ndarray:
        a = a[:, :, None] if a.ndim == 2 else a
        return a[:, :, :-1] if a.shape[2] in (2, 4) else a

    r = colour(ref).astype(np.float64)
    row: dict[str, Any] = {}
    for name, img in (("input", noisy), ("output", out)):
        if img is None:
            continue
        x = colour(img).astype(np.float64)
        if x.shape != r.shape:
            return {"note": f"reference shape {ref.shape} differs from {img.shape}"}
        row[f"psnr_{name}"] = float(peak_signal_noise_ratio(r, x, data_range=max_value))
        win = min(7, *r.shape[:2]) // 2 * 2 + 1 if min(r.shape[:2]) < 7 else 7
        row[f"ssim_{name}"] = float(structural_similarity(
            r[:, :, 0] if r.shape[2] == 1 else r, x[:, :, 0] if x.shape[2] == 1 else x,
            data_range=max_value, channel_axis=None if r.shape[2] == 1 else 2, win_size=win))
    return row


def _reference_row(rel: str, reference: Path, noisy: np.ndarray, den: np.ndarray, max_value: float) -> dict[str, Any]:
    ref_path = reference / rel
    row: dict[str, Any] = {"path": printable(rel)}
    try:
        ref, _ = read_image(ref_path)
    except ImageReadError as e:
        row["note"] = printable(f"reference {ref_path}: {e}")
        return row
    row.update(image_metrics(ref, den, noisy, max_value))
    return row


def denoise_path(den: Denoiser, input_path: str | Path, out: str | Path, *, overwrite: bool = False,
                 reference: str | Path | None = None, csv_path: str | Path | None = None,
                 shard: Shard | None = None) -> DenoiseReport:
    """Denoise a file or every image below a folder into ``out`` (same relative paths, names,
    format, bit depth and channels). With ``reference``, PSNR/SSIM against the clean image at
    the same relative path, written to ``csv_path`` (default OUT/denoise_metrics.csv, or
    OUT/denoise_metrics-shard-K-of-N.csv for a shard). ``shard``: only that share of the files
    (aedetect.data.shard), so N jobs can clean one tree into one OUT without coordination."""
    inp, outp = Path(input_path), Path(out)
    jobs = plan(inp, outp)
    if shard is not None:
        jobs = shard.take(jobs)
    remove_orphans(outp)  # a killed earlier run's half-written temporary files
    rep = DenoiseReport()
    ref = Path(reference) if reference is not None else None
    if ref is not None and not ref.is_dir():
        raise DataError(f"--reference {ref}: not a folder")
    default_csv = "denoise_metrics.csv" if shard is None else f"denoise_metrics-shard-{shard.index}-of-{shard.count}.csv"
    metrics_csv = Path(csv_path) if csv_path is not None else outp / default_csv
    if ref is not None:
        check_csv_target(metrics_csv, inp, overwrite)  # before any work
    t0 = time.perf_counter()
    with progress_bar("denoising", total=len(jobs)) as bar:
        for k, (src, target, rel) in enumerate(jobs):
            try:
                if target.exists() and not overwrite:
                    rep.skipped.append(rel)  # done by an earlier run: not even decoded again
                    if ref is not None:
                        arr, info = read_image(src)
                        rep.metrics.append(_reference_row(rel, ref, arr, read_image(target)[0], info.max_value))
                else:
                    arr, info = read_image(src)
                    result = den.denoise_array(arr)
                    write_image_atomic(target, result, info, overwrite=overwrite)
                    rep.done.append(rel)
                    if ref is not None:
                        rep.metrics.append(_reference_row(rel, ref, arr, result, info.max_value))
            except OutputExistsError:  # another run into the same --out wrote it meanwhile: done
                rep.skipped.append(rel)
            except OutputError as e:
                if stops_the_run(e, target, outp):
                    raise OutputError(f"{e}; stopped at the first failed write ({len(rep.done)} written, "
                                      f"{len(jobs) - k - 1} not tried; a re-run goes on from here)") from None
                log.warning("failed %s: %s", src, e)
                rep.failed.append((printable(rel), printable(e)))
            except (ImageReadError, DataError, OSError) as e:
                log.warning("failed %s: %s", src, e)
                rep.failed.append((printable(rel), printable(e)))
            bar.advance()
            rate = (k + 1) / max(time.perf_counter() - t0, 1e-9)
            bar.update(info=f"{rate:.2f} img/s")
    rep.seconds = time.perf_counter() - t0
    if ref is not None:
        rep.csv_path = metrics_csv
        write_metrics(rep, rep.csv_path, overwrite=overwrite)
    return rep


def write_metrics(rep: DenoiseReport, path: Path, overwrite: bool = False) -> None:
    """Per-image PSNR/SSIM rows and a final ``mean`` row, atomically (an existing file only
    with ``overwrite``)."""
    keys = ["path", "psnr_input", "psnr_output", "ssim_input", "ssim_output", "note"]
    buf = io.StringIO()
    w = SafeDictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for m in rep.metrics:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in m.items()})
    means = {k: rep.mean(k) for k in keys[1:5]}
    w.writerow({"path": "mean", **{k: f"{v:.4f}" for k, v in means.items() if v is not None}})
    write_text_atomic(path, buf.getvalue(), overwrite=overwrite)
