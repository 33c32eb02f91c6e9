"""Inference settings chosen on validation: the Train400 images a run held out whole.

Recomputes which images ``aedetect fit`` held out (the CropPool split of the run's seed over the
folder's images) and measures a model on them, so a setting (the geometric self-ensemble, the
noise-level estimate) is chosen on images the model never trained on and that are not a test
set. Same noise protocol as bench/denoise_bench.py.

    OMP_NUM_THREADS=1 python bench/denoise_valcheck.py runs/pretrained-gray ../shared/data/Train400
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from denoise_bench import clean_images, noisy_copy  # noqa: E402


def held_out(run: Path, folder: Path) -> list[tuple[str, np.ndarray]]:
    """The images the run's validation split held out (the split of aedetect.denoise.crops)."""
    from aedetect.core.modelfile.file import read_metadata
    from aedetect.data.sources import find_images

    cfg = read_metadata(run / "model.safetensors")["config"]["train"]
    paths = [Path(p).name for p in find_images(str(folder))]
    n = len(paths)
    n_val = min(n - 1, round(n * cfg["val_fraction"]))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg["seed"])).tolist()
    keep = {paths[i] for i in perm[:n_val]}
    return [(name, im) for name, im in clean_images(str(folder)) if name in keep]


def main() -> None:
    from skimage.metrics import peak_signal_noise_ratio

    from aedetect.denoise.denoiser import Denoiser

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[15.0, 25.0, 50.0])
    ap.add_argument("--ensembles", type=int, nargs="+", default=[1, 2, 8])
    a = ap.parse_args()
    images = held_out(a.run, a.folder)
    res = {}
    for ens in a.ensembles:
        for mode in ("true", "auto") if ens == 1 else ("true",):  # the estimate: measured once
            den = Denoiser.load(a.run / "model.safetensors", device="cpu", ensemble=ens)
            for sigma in a.sigmas:
                vals, t0 = [], time.perf_counter()
                for i, (_, clean) in enumerate(images):
                    y = torch.from_numpy(noisy_copy(clean, sigma, i))[None, None]
                    out = den.denoise_tensor(y, sigma=sigma if mode == "true" else "auto").clamp(0, 1)
                    vals.append(peak_signal_noise_ratio(clean, out[0, 0].numpy(), data_range=1.0))
                key = f"x{ens} {mode} sigma {sigma:g}"
                res[key] = {"psnr": round(float(np.mean(vals)), 3), "s_per_image": round((time.perf_counter() - t0) / len(images), 4)}
                print(key, res[key], flush=True)
    print(json.dumps({"images": len(images), "results": res}))


if __name__ == "__main__":
    main()
