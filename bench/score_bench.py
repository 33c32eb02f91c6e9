"""Scoring from files: ``aedetect score`` against a naive loop, side by side in one process.

The naive loop is what a first script does: for each file, ``PIL.Image.open``, convert to a
float tensor, one forward pass of the same model, the squared-error map, its top-1 % mean as
the score. ``aedetect score`` decodes in threads a batch ahead, runs batches in the model's
memory layout and writes scores.csv (heat maps and report off, so both sides compute the
same thing: a score per image). The scores of the two are compared before timing.

    python bench/score_bench.py --data-root ../shared/data --images 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_pngs(data_root: str, n: int, folder: Path) -> list[Path]:
    from PIL import Image
    from torchvision.datasets import MNIST

    ds = MNIST(data_root, train=False, download=False)
    paths = []
    for i in range(min(n, len(ds))):
        p = folder / f"{i:05d}.png"
        Image.fromarray(ds.data[i].numpy()).save(p)
        paths.append(p)
    return paths


def naive_scores(model_path: Path, paths: list[Path]) -> np.ndarray:
    """One image at a time, as a first script would."""
    import aedetect
    from PIL import Image

    mf = aedetect.load(model_path, device="cpu")
    model = mf.model.eval()
    s = mf.calibration["settings"]
    out = []
    with torch.no_grad():
        for p in paths:
            x = torch.from_numpy(np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0)[None, None]
            y = model(x)
            m = ((x - y) ** 2).mean(1).flatten(1)
            k = max(1, round(m.shape[1] * s["topk_percent"] / 100))
            out.append(float(m.topk(k, dim=1).values.mean()))
    return np.array(out)


def aedetect_scores(model_path: Path, folder: Path, out: Path) -> np.ndarray:
    from aedetect.anomaly.jobs.score import score_data

    score_data(model_path, str(folder), out, heatmaps=False, report=False, batch_size=256, device="cpu")
    with open(out / "scores.csv") as fh:
        return np.array([float(r["score"]) for r in csv.DictReader(fh)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=os.environ.get("AEDETECT_DATA_ROOT", "../shared/data"))
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from aedetect.core.training.fit import fit
    from aedetect.core.presets import build_config

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "png").mkdir()
        paths = write_pngs(args.data_root, args.images, tmpd / "png")
        # The model: preset small at 28x28, the squared-error map without smoothing (what the
        # naive loop computes), trained for 1 epoch on MNIST threes (speed does not depend on it).
        cfg = build_config("small", overrides={"data": {"size": [28, 28]}, "train": {"epochs": 1, "device": "cpu"},
                                               "anomaly": {"map": "mse", "smooth_sigma": 0, "score": "topk"}})
        model = fit("mnist", cfg, tmpd / "model", normal_class=3, data_root=args.data_root).model_path
        a = aedetect_scores(model, tmpd / "png", tmpd / "check")
        b = naive_scores(model, paths)
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
        times: dict[str, list[float]] = {"naive": [], "aedetect": []}
        for r in range(args.repeats):
            t0 = time.perf_counter()
            naive_scores(model, paths)
            times["naive"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            aedetect_scores(model, tmpd / "png", tmpd / f"run{r}")
            times["aedetect"].append(time.perf_counter() - t0)
    n = len(paths)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{n} MNIST test PNGs (28x28), preset small, median of {args.repeats}; "
          f"scores agree to {rel:.1e} (max relative difference)")
    print("| pipeline | seconds | images/s | ratio |")
    print("|---|---|---|---|")
    for k, label in (("naive", "naive loop (PIL open, one image per forward pass)"),
                     ("aedetect", "`aedetect score` (threaded decoding, batches of 256)")):
        print(f"| {label} | {med[k]:.1f} | {n / med[k]:,.0f} | {med['naive'] / med[k]:.2f} |")


if __name__ == "__main__":
    main()
