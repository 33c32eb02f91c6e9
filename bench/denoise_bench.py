"""Denoising benchmark: the aedetect denoiser against classical denoisers, on the same noisy inputs.

Protocol (docs/benchmarks-denoise.md has the results and the machine):
  * noise: additive white Gaussian, sigma on the 0..255 scale, NOT clipped or quantised
    (the protocol behind the published BM3D / DnCNN Set12 tables), seed fixed per image;
  * train (gray): scikit-image photographs GRAY_TRAIN; held out: Set12 (standard set; its
    01.png is scikit-image's camera, which is therefore never trained on) and scikit-image's
    chelsea and coffee (converted to gray);
  * RGB: train on RGB_TRAIN, held out chelsea and coffee, colour (per-channel i.i.d.) noise;
  * PSNR with data_range=1 on [0, 1] images (denoised outputs clipped to [0, 1]), averaged
    per image; SSIM from skimage.metrics.structural_similarity (data_range=1);
  * each model is trained for a fixed wall-clock budget (TRAIN_SECONDS) on one CPU thread.

Usage (each step is one bounded command; run with OMP_NUM_THREADS=1):
  python bench/denoise_bench.py train gray15|gray25|gray50|grayblind|rgbblind [--seconds S]
  python bench/denoise_bench.py eval gray SIGMA [--bm3d-subset N]   # re-run to resume after a timeout
  python bench/denoise_bench.py eval rgb SIGMA
  python bench/denoise_bench.py report         # writes the markdown tables from the JSON results
BM3D comes from the ``bm3d`` package (pip install 'aedetect[bench]'); it is never a runtime dependency.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(os.environ.get("DENOISE_BENCH_OUT", "bench/out/denoise"))
SET12 = Path(os.environ.get("SET12_DIR", "/work/shared/data/Set12"))
GRAY_TRAIN = ["astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "coins", "moon",
              "grass", "gravel", "brick", "clock", "cell", "page", "text", "retina"]
RGB_TRAIN = ["astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel"]
HELD_OUT_SKIMAGE = ["chelsea", "coffee"]
TRAIN_SECONDS = 180.0
MODELS = {"gray15": (1, 15.0, 15.0), "gray25": (1, 25.0, 25.0), "gray50": (1, 50.0, 50.0),
          "grayblind": (1, 5.0, 50.0), "rgbblind": (3, 5.0, 50.0)}


def skimage_photo(name: str, channels: int) -> np.ndarray:
    """A scikit-image sample as float32 (H, W) or (H, W, 3) in [0, 1]."""
    import skimage.data as skd
    from skimage.color import rgb2gray

    im = getattr(skd, name)()
    if im.ndim == 3:
        im = im[..., :3]
    if channels == 1:
        return (rgb2gray(im) if im.ndim == 3 else im / 255.0).astype(np.float32)
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    return (im / 255.0).astype(np.float32)


def train(name: str, seconds: float) -> None:
    """Train one model for a wall-clock budget; fresh random crops every round."""
    from aedetect.core.modelfile import save_model
    from aedetect.core.cae import ConvAutoencoder
    from aedetect.core.presets import build_config
    from aedetect.denoise.head import DenoiseHead, crop_set
    from aedetect.denoise.noise import parse_recipe
    from aedetect.core.train import Trainer

    channels, lo, hi = MODELS[name]
    names = GRAY_TRAIN if channels == 1 else RGB_TRAIN
    photos = [np.rint(skimage_photo(n, channels) * 255).astype(np.uint8) for n in names]
    imgs = [torch.from_numpy(p.reshape(*p.shape[:2], channels)).permute(2, 0, 1) for p in photos]
    level = lo if lo == hi else [lo, hi]
    cfg = build_config("denoise-unet", overrides={
        "data": {"channels": channels},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "val_fraction": 0.1, "grid_every": 0},
        "denoise": {"noise": "gaussian", "level": level, "clip": False, "patch_size": 48, "crops_per_image": 24}})
    recipe = parse_recipe(cfg.denoise)
    head = DenoiseHead()
    val = crop_set(imgs, 255.0, recipe, seed=999)
    cfg.data.size = tuple(val.shape[-2:])  # type: ignore[assignment]
    torch.manual_seed(0)
    trainer = Trainer(ConvAutoencoder(cfg.model), cfg, run_dir=None, corrupt=head.corruption(cfg))
    t0, rnd = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        rnd += 1
        crops = crop_set(imgs, 255.0, recipe, seed=rnd)
        cfg.train.epochs = rnd
        trainer.start_epoch = rnd
        trainer.fit(crops, val.subset(list(range(0, len(val), 4))))
        trainer.model.train()
    took = time.perf_counter() - t0
    calib = head.calibrate(trainer.model, val, cfg, trainer.device)
    OUT.mkdir(parents=True, exist_ok=True)
    crops_seen = rnd * len(imgs) * recipe.crops_per_image
    save_model(OUT / f"{name}.safetensors", trainer.model, cfg, calibration=calib,
               training={"train_seconds": round(took, 1), "rounds": rnd, "crops_seen": crops_seen,
                         "train_images": names, "threads": torch.get_num_threads()})
    print(json.dumps({"model": name, "train_seconds": round(took, 1), "rounds": rnd,
                      "crops_seen": crops_seen, **calib}))


def noisy_copy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (clean + rng.standard_normal(clean.shape).astype(np.float32) * (sigma / 255.0)).astype(np.float32)


def held_out(kind: str) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    if kind == "gray":
        out = [(f"Set12/{p.name}", np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255.0)
               for p in sorted(SET12.glob("*.png"))]
        return out + [(f"skimage/{n}", skimage_photo(n, 1)) for n in HELD_OUT_SKIMAGE]
    return [(f"skimage/{n}", skimage_photo(n, 3)) for n in HELD_OUT_SKIMAGE]


def methods(kind: str, sigma: float, bm3d_subset: int | None) -> dict[str, object]:
    """name -> f(noisy, index) returning the denoised image (None = skipped for this image)."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet, estimate_sigma

    from aedetect.denoise.denoiser import Denoiser

    ca = None if kind == "gray" else -1
    gray_model = {15.0: "gray15", 25.0: "gray25", 50.0: "gray50"}.get(sigma)
    models = {}
    if kind == "gray":
        if gray_model and (OUT / f"{gray_model}.safetensors").exists():
            models[f"aedetect (sigma {sigma:g} model)"] = Denoiser.load(OUT / f"{gray_model}.safetensors")
        if (OUT / "grayblind.safetensors").exists():
            models["aedetect (blind 5..50)"] = Denoiser.load(OUT / "grayblind.safetensors")
    elif (OUT / "rgbblind.safetensors").exists():
        models["aedetect (blind 5..50)"] = Denoiser.load(OUT / "rgbblind.safetensors")

    def nlm(y: np.ndarray, i: int) -> np.ndarray:
        s = float(np.mean(estimate_sigma(y, channel_axis=ca)))
        return denoise_nl_means(y, h=0.8 * s, sigma=s, fast_mode=True, patch_size=7, patch_distance=11,
                                channel_axis=ca)

    def bm3d_fn(y: np.ndarray, i: int) -> np.ndarray | None:
        import bm3d

        if bm3d_subset is not None and i >= bm3d_subset:
            return None
        return bm3d.bm3d(y, sigma / 255.0) if kind == "gray" else bm3d.bm3d_rgb(y, sigma / 255.0)

    fns: dict[str, object] = {
        "noisy input": lambda y, i: y,
        "tv_chambolle": lambda y, i: denoise_tv_chambolle(y, weight=0.05 * sigma / 15, channel_axis=ca),
        "wavelet (BayesShrink)": lambda y, i: denoise_wavelet(y, method="BayesShrink", mode="soft",
                                                              rescale_sigma=True, channel_axis=ca,
                                                              convert2ycbcr=kind == "rgb"),
        "nl_means (estimate_sigma)": nlm,
        "BM3D": bm3d_fn,
    }
    for label, den in models.items():
        fns[label] = (lambda d: lambda y, i: d.denoise(y))(den)
    return fns


def evaluate(kind: str, sigma: float, bm3d_subset: int | None) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    images = held_out(kind)
    fns = methods(kind, sigma, bm3d_subset)
    prev = OUT / f"eval_{kind}_{sigma:g}.json"
    rows = json.loads(prev.read_text())["rows"] if prev.exists() else []  # resume a timed-out run
    for i, (name, clean) in enumerate(images):
        if {r["method"] for r in rows if r["image"] == name} >= set(fns) - ({"BM3D"} if bm3d_subset is not None and i >= bm3d_subset else set()):
            continue
        rows = [r for r in rows if r["image"] != name]
        noisy = noisy_copy(clean, sigma, seed=1000 + i)
        for label, fn in fns.items():
            t0 = time.perf_counter()
            out = fn(noisy, i)  # type: ignore[operator]
            dt = time.perf_counter() - t0
            if out is None:
                continue
            out = np.clip(np.asarray(out, dtype=np.float32).reshape(clean.shape), 0, 1)
            psnr = peak_signal_noise_ratio(clean, out, data_range=1.0)
            ssim = structural_similarity(clean, out, data_range=1.0, channel_axis=None if kind == "gray" else -1)
            rows.append({"image": name, "method": label, "psnr": round(float(psnr), 3),
                         "ssim": round(float(ssim), 4), "seconds": round(dt, 3)})
            print(f"{name:22s} {label:28s} {psnr:6.2f} dB  SSIM {ssim:.4f}  {dt:7.2f} s", flush=True)
        _save(kind, sigma, bm3d_subset, rows)  # after every image: a timed-out run keeps what it did


def _save(kind: str, sigma: float, bm3d_subset: int | None, rows: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"kind": kind, "sigma": sigma, "bm3d_subset": bm3d_subset, "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}
    (OUT / f"eval_{kind}_{sigma:g}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


def _mean(rows: list[dict], method: str, key: str, prefix: str = "") -> float:
    v = [r[key] for r in rows if r["method"] == method and r["image"].startswith(prefix)]
    return float(np.mean(v)) if v else math.nan


def report() -> None:
    """Markdown tables (mean per method) from every eval_*.json, printed to stdout."""
    for path in sorted(OUT.glob("eval_*.json")):
        d = json.loads(path.read_text())
        rows, meta = d["rows"], d["meta"]
        print(f"\n### {meta['kind']} sigma {meta['sigma']:g}\n")
        groups = [("Set12/", "Set12"), ("skimage/", "chelsea+coffee")] if meta["kind"] == "gray" else [("skimage/", "chelsea+coffee")]
        groups = [(p, f"{g} (n={len({r['image'] for r in rows if r['image'].startswith(p)})})") for p, g in groups]
        head = "| method | " + " | ".join(f"{g} PSNR | {g} SSIM" for _, g in groups) + " | s/image |"
        print(head)
        print("|" + "---|" * (2 + 2 * len(groups)))
        for m in dict.fromkeys(r["method"] for r in rows):
            cells = []
            for prefix, _ in groups:
                n = sum(1 for r in rows if r["method"] == m and r["image"].startswith(prefix))
                cells.append(f"{_mean(rows, m, 'psnr', prefix):.2f}" + (f" (n={n})" if m == "BM3D" and meta["bm3d_subset"] else ""))  # noqa: E501
                cells.append(f"{_mean(rows, m, 'ssim', prefix):.4f}")
            print(f"| {m} | " + " | ".join(cells) + f" | {_mean(rows, m, 'seconds'):.3f} |")
        bm = {r["image"]: r for r in rows if r["method"] == "BM3D"}
        for m in dict.fromkeys(r["method"] for r in rows if r["method"].startswith("aedetect")):
            pairs = [(r, bm[r["image"]]) for r in rows if r["method"] == m and r["image"] in bm]
            if pairs:
                dp = np.mean([a["psnr"] - b["psnr"] for a, b in pairs])
                speed = sum(b["seconds"] for _, b in pairs) / max(sum(a["seconds"] for a, _ in pairs), 1e-9)
                print(f"\n{m} vs BM3D on the same {len(pairs)} images: {dp:+.2f} dB, {speed:.1f}x BM3D's speed")
        n_img = len({r["image"] for r in rows})
        print(f"\n({n_img} images evaluated; threads={meta['threads']}, OMP_NUM_THREADS={meta['omp_num_threads']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("name", choices=list(MODELS))
    t.add_argument("--seconds", type=float, default=TRAIN_SECONDS)
    e = sub.add_parser("eval")
    e.add_argument("kind", choices=["gray", "rgb"])
    e.add_argument("sigma", type=float)
    e.add_argument("--bm3d-subset", type=int, default=None, help="run BM3D on the first N images only")
    sub.add_parser("report")
    a = ap.parse_args()
    if a.cmd == "train":
        train(a.name, a.seconds)
    elif a.cmd == "eval":
        evaluate(a.kind, a.sigma, a.bm3d_subset)
    else:
        report()


if __name__ == "__main__":
    main()
