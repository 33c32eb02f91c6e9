"""Which denoiser architecture learns fastest on a CPU: PSNR against training CPU-seconds.

Each variant (today's U-Net, a DnCNN-style plain stack, an FFDNet-style pixel-unshuffle stack;
all with the noise-level input, sigma 0..75) is trained with recipes/pretrained-gray.toml for
the same wall-clock budget on one thread, the cosine schedule spanning its own budget, on the
same Train400 images; 10 % of them are held out whole, and that validation PSNR (crops, sigma
drawn in 0..75, the mean MSE in dB) is what chooses. Each variant is then evaluated on an
evaluation folder (Set12: the published protocol, unclipped Gaussian noise, seed 0 per image,
outputs clipped to [0, 1], per-image PSNR averaged, data_range 1) at each --sigmas.

    OMP_NUM_THREADS=1 python bench/denoise_pretrain.py --train ../shared/data/Train400 \\
        --eval ../shared/data/Set12 --seconds 300 --out bench/out/arch

Writes OUT/VARIANT/ (the fit run) and OUT/arch.json; re-running skips finished variants.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from denoise_bench import clean_images, noisy_copy  # noqa: E402  (one protocol for every bench)

VARIANTS: dict[str, dict[str, Any]] = {
    "unet": {"widths": [32, 64, 128], "convs_per_level": 2, "skip": True, "residual": True, "arch": "conv"},
    "dncnn": {"arch": "dncnn", "widths": [64], "depth": 17},
    "ffdnet": {"arch": "ffdnet", "widths": [64], "depth": 15},
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(b, a, data_range=1.0))


def evaluate(model_path: Path, images: list[tuple[str, np.ndarray]], sigmas: list[float],
             sigma_mode: str = "true") -> dict[str, Any]:
    """Mean per-image PSNR and seconds per image of a model file at each sigma (given the true
    sigma, or ``sigma_mode='auto'``: estimated per image)."""
    from aedetect.denoise.denoiser import Denoiser

    den = Denoiser.load(model_path, device="auto", max_tile_pixels=4096 * 4096)
    out: dict[str, Any] = {}
    for sigma in sigmas:
        vals, secs = [], []
        for i, (_, clean) in enumerate(images):
            y = torch.from_numpy(noisy_copy(clean, sigma, i))[None, None]
            t0 = time.perf_counter()
            d = den.denoise_tensor(y, sigma="auto" if sigma_mode == "auto" else sigma).clamp(0, 1)
            secs.append(time.perf_counter() - t0)
            vals.append(psnr(d[0, 0].cpu().numpy(), clean))
        out[f"{sigma:g}"] = {"psnr": round(float(np.mean(vals)), 3), "s_per_image": round(float(np.median(secs)), 4)}
    return out


def val_curve(run: Path) -> list[dict[str, float]]:
    """(cumulative wall seconds, crops seen, validation PSNR) per epoch, from metrics.csv."""
    rows, t, n = [], 0.0, 0
    with open(run / "metrics.csv") as f:
        for r in csv.DictReader(f):
            t += float(r.get("wall_seconds") or r["seconds"])
            n += int(float(r.get("images") or 0))
            rows.append({"seconds": round(t, 1), "crops": n, "val_psnr": float(r["val_psnr"])})
    return rows


def train_variant(name: str, train_dir: Path, out: Path, seconds: float, crops_per_image: int) -> Path:
    """Fit one variant for about ``seconds`` (epochs from a 20-second speed probe)."""
    from aedetect.core.fit import fit, resume_config
    from aedetect.core.config import load_recipe
    from aedetect.core.presets import build_config

    run = out / name
    if (run / "model.safetensors").is_file():
        return run
    if (run / "checkpoint.safetensors").is_file():
        fit(str(train_dir), resume_config(run), resume=run)
        return run
    # The recipe's [denoise] table with the crop count changed (a table in the overrides replaces
    # the recipe's whole table: the comparison of 2026-12-01 ran on the defaults, sigma 5..50 clipped).
    denoise = {**load_recipe("recipes/pretrained-gray.toml")["denoise"], "crops_per_image": crops_per_image}
    base = {"model": VARIANTS[name], "denoise": denoise, "train": {"grid_every": 0}}
    probe_cfg = build_config("denoise-unet", "recipes/pretrained-gray.toml", base)
    rate = crops_per_second(probe_cfg)
    per_epoch = crops_per_image * round(len(clean_images(str(train_dir))) * (1 - probe_cfg.train.val_fraction))
    epochs = max(2, round(seconds * rate / per_epoch))
    print(f"{name}: {rate:.1f} crops/s -> {epochs} epochs of {per_epoch} crops", flush=True)
    cfg = build_config("denoise-unet", "recipes/pretrained-gray.toml", {**base, "train": {"grid_every": 0, "epochs": epochs}})
    fit(str(train_dir), cfg, run)
    return run


def crops_per_second(cfg: Any) -> float:
    """Training crops per second of a config's model on random data (a few steps)."""
    from aedetect.core.train import initial_model, make_optimizer

    m = initial_model(cfg).train()
    opt = make_optimizer(m, cfg)
    p = cfg.denoise.get("patch_size", 64)
    x = torch.rand(cfg.train.batch_size, cfg.model.input_channels, p, p).contiguous(memory_format=torch.channels_last)
    m = m.to(memory_format=torch.channels_last)
    t0, steps = 0.0, 0
    for i in range(6):
        if i == 2:
            t0 = time.perf_counter()
        loss = (m(x) - x[:, :1]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += i >= 2
    return cfg.train.batch_size * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True, help="evaluation folder (e.g. Set12)")
    ap.add_argument("--eval-name", default=None, help="its name in the table (default: the folder's name)")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--crops-per-image", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--sigmas", type=float, nargs="+", default=[25.0])
    ap.add_argument("--out", type=Path, default=Path("bench/out/arch"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    res_path = a.out / "arch.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    images = clean_images(str(a.eval))
    for name in a.variants:
        if name in results:
            continue
        run = train_variant(name, a.train, a.out, a.seconds, a.crops_per_image)
        curve = val_curve(run)
        summary = json.loads((run / "summary.json").read_text())
        results[name] = {"model": VARIANTS[name], "curve": curve, "final_val_psnr": curve[-1]["val_psnr"],
                         "parameters": summary["training"].get("parameters"),
                         "eval": evaluate(run / "model.safetensors", images, a.sigmas),
                         "eval_name": a.eval_name or a.eval.name, "threads": torch.get_num_threads()}
        res_path.write_text(json.dumps(results, indent=2))
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "curve"}), flush=True)
    best = max(results, key=lambda k: results[k]["final_val_psnr"]) if results else None
    print("chosen by validation PSNR:", best, "" if best is None else f"{results[best]['final_val_psnr']:.2f} dB")


if __name__ == "__main__":
    main()
