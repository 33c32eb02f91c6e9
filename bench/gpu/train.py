"""Train the shipped denoisers for a fixed wall time on one device (bench/gpu/run.sh).

Each job is ``NAME:RECIPE:DATA:SECONDS``. One epoch of the recipe is timed first (a probe run,
thrown away); the real run then gets as many epochs as fit in SECONDS, so its cosine schedule
decays to the end inside the time (a run cut by a timer would stop at a high learning rate).
Writes OUT/NAME.safetensors (the run's best-on-validation model), OUT/speed.json (crops per
second, epochs, validation PSNR of each) and keeps the run folders under OUT/runs/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def fit(recipe: str, data: str, out: Path, device: str, batch: int, epochs: int, extra: list[str]) -> float:
    """One ``aedetect fit`` run; its wall seconds."""
    cmd = [sys.executable, "-m", "aedetect", "fit", "--recipe", recipe, data, "--out", str(out),
           "--device", device, "--batch-size", str(batch), "--epochs", str(epochs), *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobs", nargs="+", help="NAME:RECIPE:DATA:SECONDS")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="a config key=value for every run")
    a = ap.parse_args()
    runs = a.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    speed: dict[str, dict] = {}
    for job in a.jobs:
        name, recipe, data, seconds = job.split(":")
        extra = [x for kv in a.sets for x in ("--set", kv)]
        probe = fit(recipe, data, runs / f"{name}-probe", a.device, a.batch, 2, extra)
        one = fit(recipe, data, runs / f"{name}-probe1", a.device, a.batch, 1, extra)
        per_epoch, start = max(probe - one, 1e-3), max(2 * one - probe, 0.0)  # epoch cost, fixed start-up
        epochs = max(1, int((float(seconds) - start) / per_epoch))
        took = fit(recipe, data, runs / name, a.device, a.batch, epochs, extra)
        shutil.copy2(runs / name / "model.safetensors", a.out / f"{name}.safetensors")
        metrics = json.loads((runs / name / "metrics.json").read_text()) if (runs / name / "metrics.json").exists() else {}
        speed[name] = {"device": a.device, "batch": a.batch, "epochs": epochs, "seconds": round(took, 1),
                       "seconds_per_epoch": round(per_epoch, 2), "start_up_s": round(start, 1),
                       "metrics": metrics}
        print(name, json.dumps(speed[name])[:400], flush=True)
        (a.out / "speed.json").write_text(json.dumps(speed, indent=1))


if __name__ == "__main__":
    main()
