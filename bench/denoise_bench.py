"""Denoising benchmark: aedetect models against classical denoisers, on the same noisy inputs.

Protocol (docs/benchmarks/denoise.md has the results and the machine):
  * noise: additive white Gaussian, sigma on the 0..255 scale, NOT clipped or quantised (the
    protocol behind the published BM3D / DnCNN Set12 tables), numpy seed = the image's index;
  * PSNR with data_range=1 on [0, 1] images (outputs clipped to [0, 1]), averaged per image;
    SSIM from skimage.metrics.structural_similarity (data_range=1);
  * every method runs on the same noisy array, one CPU thread (run with OMP_NUM_THREADS=1);
    seconds are each method's median over the images.
  * a model with a noise-level input runs twice: given the true sigma, and with --sigma auto
    (estimated per image, aedetect.denoise.sigma).

Usage (each step is one bounded command; re-running resumes where a cut run stopped):
  python bench/denoise_bench.py eval --folder ../shared/data/Set12 --sigma 25 --models pretrained:gray
  python bench/denoise_bench.py eval --folder skimage --sigma 25 --models pretrained:gray   # bundled photos
  python bench/denoise_bench.py sigma --folder ../shared/data/Set12      # --sigma auto's error
  python bench/denoise_bench.py eval --colour --folder DIR --sigma 25 --models pretrained:rgb pretrained:gray
--colour evaluates RGB images (CBM3D, bm3d.bm3d_rgb, instead of BM3D; a gray model runs per channel);
its files and tables are named "... colour".
  python bench/denoise_bench.py report
--folder is a folder of images (its name labels the table; --name overrides) or ``skimage``:
scikit-image's gray photographs that neither Train400 nor Set12 holds (SKIMAGE_HELD_OUT).
BM3D comes from the ``bm3d`` package and the wavelet baseline from PyWavelets
(pip install 'aedetect[bench]'); either is left out, with a note, where it is not installed.
bm3d is free for non-commercial use only, so it is never a runtime dependency.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

OUT = Path(os.environ.get("DENOISE_BENCH_OUT", "bench/out/denoise"))
SKIMAGE_HELD_OUT = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field"]
Method = Callable[[np.ndarray, int], "np.ndarray | None"]


def skimage_gray(name: str) -> np.ndarray:
    """A scikit-image sample as float32 (H, W) in [0, 1]."""
    import skimage.data as skd
    from skimage.color import rgb2gray

    im = getattr(skd, name)()
    im = im[..., :3] if im.ndim == 3 else im
    return (rgb2gray(im) if im.ndim == 3 else im / 255.0).astype(np.float32)


def clean_images(folder: str, colour: bool = False) -> list[tuple[str, np.ndarray]]:
    """(name, float32 (H, W) or, ``colour``, (H, W, 3) in [0, 1]) of the evaluation images, by name.
    ``folder`` may also be a text file listing image paths (one per line)."""
    from PIL import Image

    if folder == "skimage":
        return [(n, skimage_gray(n)) for n in SKIMAGE_HELD_OUT]
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    src = Path(folder)
    files = ([Path(line) for line in src.read_text().split()] if src.is_file()
             else [p for p in sorted(src.iterdir()) if p.suffix.lower() in exts])
    return [(p.name, np.asarray(Image.open(p).convert("RGB" if colour else "L"), dtype=np.float32) / 255.0)
            for p in files]


def noisy_copy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (clean + rng.standard_normal(clean.shape).astype(np.float32) * (sigma / 255.0)).astype(np.float32)


def methods(sigma: float, models: list[str], bm3d_subset: int | None,
            ensembles: tuple[int, ...] = (), colour: bool = False) -> tuple[dict[str, Method], list[str]]:
    """name -> f(noisy, index) giving the denoised image (None: skipped for this image); notes.
    ``colour``: (H, W, 3) images, the classical methods in their colour forms."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    from aedetect.denoise.denoiser import Denoiser
    from aedetect.denoise.sigma import estimate_sigma

    notes: list[str] = []

    axis = -1 if colour else None

    def est(y: np.ndarray) -> float:
        return float(estimate_sigma(to_batch(y))[0]) / 255.0

    fns: dict[str, Method] = {
        "noisy input": lambda y, i: y,
        "TV (Chambolle)": lambda y, i: denoise_tv_chambolle(y, weight=0.05 * sigma / 15, channel_axis=axis),
        "NLM (estimated sigma)": lambda y, i: denoise_nl_means(y, h=0.8 * est(y), sigma=est(y), fast_mode=True,
                                                               patch_size=7, patch_distance=11, channel_axis=axis),
    }
    if importlib.util.find_spec("pywt") is not None:
        from skimage.restoration import denoise_wavelet

        fns["wavelet (BayesShrink)"] = lambda y, i: denoise_wavelet(y, method="BayesShrink", mode="soft",
                                                                    rescale_sigma=True, channel_axis=axis,
                                                                    convert2ycbcr=colour)
    else:
        notes.append("wavelet (BayesShrink) left out: PyWavelets is not installed")
    if bm3d_subset != 0 and importlib.util.find_spec("bm3d") is not None:
        def bm3d_fn(y: np.ndarray, i: int) -> np.ndarray | None:
            import bm3d

            if bm3d_subset is not None and i >= bm3d_subset:
                return None
            return bm3d.bm3d_rgb(y, sigma / 255.0) if colour else bm3d.bm3d(y, sigma / 255.0)

        fns["CBM3D" if colour else "BM3D"] = bm3d_fn
    elif bm3d_subset != 0:
        notes.append("BM3D left out: the bm3d package is not installed (pip install 'aedetect[bench]')")
    for spec in models:
        den = Denoiser.load(spec, device="cpu", max_tile_pixels=4096 * 4096)
        label = f"aedetect {spec}"

        def run(y: np.ndarray, i: int, d: Denoiser = den, s: float | str = sigma) -> np.ndarray:
            return from_batch(d.denoise_tensor(to_batch(y), sigma=s))  # a gray model: per channel

        fns[f"{label} (true sigma)" if den.takes_sigma else label] = run
        if den.takes_sigma:
            fns[f"{label} (--sigma auto)"] = lambda y, i, d=den: run(y, i, d, "auto")
        for n in ensembles:  # the geometric self-ensemble (aedetect.denoise.ensemble), true sigma
            more = copy.copy(den)  # the same loaded weights, averaged over n flips/turns
            more.ensemble = n
            fns[f"{label} (x{n} ensemble{', true sigma' if more.takes_sigma else ''})"] = (
                lambda y, i, d=more: run(y, i, d))
    return fns, notes


def to_batch(y: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) -> (1, C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(y))
    return t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]


def from_batch(t: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) -> (H, W) for one channel, else (H, W, C)."""
    return t[0, 0].numpy() if t.shape[1] == 1 else t[0].permute(1, 2, 0).numpy()


def evaluate(folder: str, name: str, sigma: float, models: list[str], bm3d_subset: int | None,
             ensembles: tuple[int, ...] = (), only: tuple[str, ...] = (), colour: bool = False) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    images = clean_images(folder, colour)
    fns, notes = methods(sigma, models, bm3d_subset, ensembles, colour)
    if only:  # e.g. a timing run of two methods on a quiet machine
        fns = {k: f for k, f in fns.items() if any(o in k for o in only)}
    path = OUT / f"eval_{name}_{sigma:g}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []  # resume a cut run
    for i, (img, clean) in enumerate(images):
        done = {r["method"] for r in rows if r["image"] == img}
        noisy = noisy_copy(clean, sigma, seed=i)
        for label, fn in fns.items():
            if label in done:
                continue
            t0 = time.perf_counter()
            out = fn(noisy, i)
            dt = time.perf_counter() - t0
            if out is None:
                continue
            out = np.clip(np.asarray(out, dtype=np.float32).reshape(clean.shape), 0, 1)
            psnr = peak_signal_noise_ratio(clean, out, data_range=1.0)
            ssim = structural_similarity(clean, out, data_range=1.0, channel_axis=-1 if colour else None)
            rows.append({"image": img, "method": label, "psnr": round(float(psnr), 3),
                         "ssim": round(float(ssim), 4), "seconds": round(dt, 4)})
            print(f"{img:22s} {label:42s} {psnr:6.2f} dB  SSIM {ssim:.4f}  {dt:7.3f} s", flush=True)
        _save(path, name, sigma, bm3d_subset, rows, notes)  # after every image


def _save(path: Path, name: str, sigma: float, bm3d_subset: int | None, rows: list[dict], notes: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"set": name, "sigma": sigma, "bm3d_subset": bm3d_subset, "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "notes": notes}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    tmp.replace(path)


def sigma_error(folder: str, sigmas: list[float], colour: bool = False) -> None:
    """How far ``--sigma auto``'s estimate is from the true sigma, per level (same noise as eval)."""
    from aedetect.denoise.sigma import estimate_sigma

    images = clean_images(folder, colour)
    print(f"| true sigma | mean estimate | mean error | largest error |  ({Path(folder).name}, {len(images)} images)")
    print("|---|---|---|---|")
    for sigma in sigmas:
        est = np.array([float(estimate_sigma(to_batch(noisy_copy(c, sigma, i)))[0])
                        for i, (_, c) in enumerate(images)])
        err = est - sigma
        print(f"| {sigma:g} | {est.mean():.2f} | {err.mean():+.2f} | {err[np.abs(err).argmax()]:+.2f} |")


def report() -> None:
    """One markdown table per evaluation file (mean PSNR/SSIM, median seconds), printed."""
    for path in sorted(OUT.glob("eval_*.json")):
        d = json.loads(path.read_text())
        rows, meta = d["rows"], d["meta"]
        n_img = len({r["image"] for r in rows})
        print(f"\n### {meta['set']} ({n_img} images), sigma {meta['sigma']:g}\n")
        print("| method | PSNR (dB) | SSIM | s/image (median) |\n|---|---|---|---|")
        for m in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["method"] == m]
            extra = f" (n={len(mine)})" if len(mine) != n_img else ""
            print(f"| {m} | {np.mean([r['psnr'] for r in mine]):.2f}{extra} | {np.mean([r['ssim'] for r in mine]):.4f} "
                  f"| {np.median([r['seconds'] for r in mine]):.3f} |")
        ref = "CBM3D" if any(r["method"] == "CBM3D" for r in rows) else "BM3D"
        bm = {r["image"]: r for r in rows if r["method"] == ref}
        for m in dict.fromkeys(r["method"] for r in rows if r["method"].startswith("aedetect")):
            pairs = [(r, bm[r["image"]]) for r in rows if r["method"] == m and r["image"] in bm]
            if pairs:
                dp = np.mean([a["psnr"] - b["psnr"] for a, b in pairs])
                speed = sum(b["seconds"] for _, b in pairs) / max(sum(a["seconds"] for a, _ in pairs), 1e-9)
                print(f"\n{m} vs {ref} on the same {len(pairs)} images: {dp:+.2f} dB, {speed:.0f}x {ref}'s speed")
        for note in meta.get("notes", []):
            print(f"\nnote: {note}")
        print(f"\n(threads={meta['threads']}, OMP_NUM_THREADS={meta['omp_num_threads']}, {meta['machine']}, "
              f"{meta['cpus']} CPUs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--folder", required=True, help="a folder of clean images, or 'skimage'")
    e.add_argument("--name", default=None, help="the set's name in the table (default: the folder's name)")
    e.add_argument("--sigma", type=float, required=True)
    e.add_argument("--models", nargs="*", default=["pretrained:gray"], help="model files or pretrained:NAME")
    e.add_argument("--bm3d-subset", type=int, default=None, help="BM3D on the first N images only (0: none)")
    e.add_argument("--ensembles", type=int, nargs="*", default=[], help="also each model with --ensemble N")
    e.add_argument("--only", nargs="*", default=[], help="run only the methods whose names contain one of these")
    e.add_argument("--colour", action="store_true", help="RGB images: colour methods, CBM3D")
    g = sub.add_parser("sigma", help="error of the --sigma auto estimate")
    g.add_argument("--folder", required=True)
    g.add_argument("--colour", action="store_true")
    g.add_argument("--sigmas", type=float, nargs="+", default=[5, 15, 25, 50, 75])
    sub.add_parser("report")
    a = ap.parse_args()
    if a.cmd == "sigma":
        sigma_error(a.folder, a.sigmas, a.colour)
    elif a.cmd == "eval":
        name = a.name or Path(a.folder).stem
        evaluate(a.folder, f"{name} colour" if a.colour else name, a.sigma, a.models, a.bm3d_subset,
                 tuple(a.ensembles), tuple(a.only), a.colour)
    else:
        report()


if __name__ == "__main__":
    main()
