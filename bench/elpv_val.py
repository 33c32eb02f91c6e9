"""Real-defect validation: `aedetect fit` with every default on ELPV cells, scored on the
*validation* half of the defective cells (bench/_elpv.py; the suite's elpv row reads only the
test half), with some defaults changed for a trial (never pinned: the selection still runs).

    OMP_NUM_THREADS=2 python bench/elpv_val.py --kind mono --seed 0 [--default pretrained_coreset=10 ...]

Prints one JSON line: image AUROC against the defective (and the 0.67) cells, FPR and recall at
the calibrated threshold, what was chosen, whether an autoencoder trained, the fit's CPU
seconds and peak memory (this process's, so one trial per process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import _elpv  # noqa: E402


def patch_defaults(defaults: dict[str, Any]) -> None:
    """Change AnomalySettings' defaults for keys a config does not set (a trial of a default)."""
    from aedetect.anomaly.settings import AnomalySettings
    from aedetect.core.config import Config

    original = AnomalySettings.from_config.__func__  # type: ignore[attr-defined]

    def from_config(cls: type, cfg: Any) -> AnomalySettings:
        s = original(cls, cfg)
        given = cfg.anomaly if isinstance(cfg, Config) else cfg
        for k, v in defaults.items():
            if k not in given:
                setattr(s, k, v)
        s.validate()
        return s

    AnomalySettings.from_config = classmethod(from_config)  # type: ignore[method-assign,assignment]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=_elpv.KINDS, default="mono")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--default", nargs="*", default=[], help="KEY=JSON anomaly defaults to try")
    ap.add_argument("--fit", nargs="*", default=[], help="KEY=JSON config overrides (e.g. data.size=[128,128])")
    args = ap.parse_args()
    patch_defaults({k: json.loads(v) for k, v in (d.split("=", 1) for d in args.default)})

    from aedetect import AnomalyDetector
    from aedetect.anomaly.evaluate.metrics import image_auroc
    from aedetect.core.config import apply_overrides
    from aedetect.core.training.fit import fit
    from aedetect.core.presets import build_config
    from aedetect.data.sources import load_folder

    idx = _elpv.split(args.kind, args.seed, "validation")
    with tempfile.TemporaryDirectory(prefix="aedetect-elpv-val-") as tmp:
        folders = {p: Path(tmp) / p for p in ("train", "normal", "defective", "likely")}
        for p, f in folders.items():
            _elpv.write_folder(idx[p], f)
        cfg = build_config(None, overrides={"train": {"seed": args.seed}})
        for item in args.fit:
            key, value = item.split("=", 1)
            section, name = key.split(".", 1)
            apply_overrides(cfg, {section: {name: json.loads(value)}})
        c0, w0 = time.process_time(), time.perf_counter()
        out = fit(str(folders["train"]), cfg.validate(), Path(tmp) / "run")
        fit_cpu, fit_wall = time.process_time() - c0, time.perf_counter() - w0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        det = AnomalyDetector.load(out.model_path, device="cpu")
        got = {p: det.score(load_folder(str(folders[p]), det.config_.data), keep_images=False, batch_size=32)
               for p in ("normal", "defective", "likely")}
    n, d, lk = (got[p].scores for p in ("normal", "defective", "likely"))
    sel = det.calibration_.get("selection") or {}
    print(json.dumps({
        "kind": args.kind, "seed": args.seed, "defaults": args.default, "fit": args.fit,
        "image_auroc": round(image_auroc(np.r_[np.zeros(len(n)), np.ones(len(d))], np.r_[n, d]), 4),
        "auroc_likely": round(image_auroc(np.r_[np.zeros(len(n)), np.ones(len(lk))], np.r_[n, lk]), 4),
        "fpr": round(float(got["normal"].flags.mean()), 4), "recall": round(float(got["defective"].flags.mean()), 4),
        "chosen": sel.get("chosen"), "objective": sel.get("chosen_auroc"),
        "autoencoder": det.config_.model.arch != "none", "size": list(det.config_.data.size or []),
        "fit_cpu_s": round(fit_cpu, 1), "fit_wall_s": round(fit_wall, 1), "peak_mb": round(peak)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
