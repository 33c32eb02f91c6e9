"""Fine-tuning the shipped denoiser on a domain it never saw: microscopy and astronomy images.

Train400 is photographs of the world; scikit-image ships images of cells (``cell``), stained
tissue (``immunohistochemistry``), a retina and the Hubble deep field, which look nothing like
them. Each image is cut in two: the left 60 % of its columns is the fine-tuning data, the right
40 % the evaluation data (same domain, pixels never trained on). The left parts go in as 96x96
tiles, so that ``fit`` holds whole tiles out for validation and keeps the epoch that does best
on them: with the four halves as four images, validation crops came from the training images,
and the run that looked best there had memorised them (cell: 35.74 dB as shipped, 32.65 after
30 epochs of such fine-tuning, sigma 50). Three models, the same noise
(unclipped Gaussian, numpy seed = image index) and the same PSNR protocol as bench/denoise_bench.py:

* ``pretrained:gray`` as shipped;
* fine-tuned: ``aedetect fit --init pretrained:gray`` on the left parts (recipe
  recipes/pretrained-gray.toml, --epochs E, lr 2e-4 decaying to 1e-5);
* from scratch: the same recipe and epochs (so the same crops and time) from random weights,
  lr 1e-3 (the recipe's own).

    OMP_NUM_THREADS=1 python bench/denoise_finetune.py --epochs 8 --out bench/out/finetune
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
from denoise_bench import noisy_copy  # noqa: E402  (one noise protocol for every bench)

IMAGES = ("cell", "immunohistochemistry", "retina", "hubble_deep_field")
SPLIT = 0.6


def domain_images() -> list[tuple[str, np.ndarray]]:
    """The images as uint8 gray (H, W)."""
    import skimage.data as skd
    from skimage.color import rgb2gray

    out = []
    for n in IMAGES:
        im = getattr(skd, n)()
        im = np.rint(rgb2gray(im[..., :3]) * 255).astype(np.uint8) if im.ndim == 3 else im
        out.append((n, im))
    return out


TILE = 96


def halves() -> tuple[list[np.ndarray], list[tuple[str, np.ndarray]]]:
    """(fine-tuning tiles of the left parts, (name, right part in [0, 1]) per image)."""
    train, held = [], []
    for n, im in domain_images():
        cut = int(im.shape[1] * SPLIT)
        left = im[:, :cut]
        train += [left[y:y + TILE, x:x + TILE, None] for y in range(0, left.shape[0] - TILE + 1, TILE)
                  for x in range(0, left.shape[1] - TILE + 1, TILE)]
        held.append((n, im[:, cut:].astype(np.float32) / 255.0))
    return train, held


def evaluate(model: str | Path, held: list[tuple[str, np.ndarray]], sigma: float) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    from aedetect.denoise.denoiser import Denoiser

    den = Denoiser.load(model, device="cpu", max_tile_pixels=4096 * 4096)
    vals = []
    for i, (_, clean) in enumerate(held):
        noisy = noisy_copy(clean, sigma, i)
        out = den.denoise_tensor(torch.from_numpy(noisy)[None, None], sigma=sigma)[0, 0].clamp(0, 1).numpy()
        vals.append(peak_signal_noise_ratio(clean, out, data_range=1.0))
    return round(float(np.mean(vals)), 3)


def train(train_imgs: list[np.ndarray], out: Path, epochs: int, init: str | None) -> tuple[Path, float, int]:
    from aedetect.core.fit import fit
    from aedetect.core.config import load_recipe
    from aedetect.core.presets import build_config

    lr = {"lr": 2e-4} if init else {}
    cfg = build_config("denoise-unet", "recipes/pretrained-gray.toml",
                       {"train": {"epochs": epochs, "grid_every": 0, "patience": 5, **lr},
                        "denoise": {**load_recipe("recipes/pretrained-gray.toml")["denoise"], "crops_per_image": 8}})
    c0 = time.process_time()
    r = fit(train_imgs, cfg, out, init=init)
    return r.model_path, time.process_time() - c0, int(r.result.extra.get("images_seen") or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[25.0, 50.0])
    ap.add_argument("--out", type=Path, default=Path("bench/out/finetune"))
    ap.add_argument("--init", default="pretrained:gray", help="the model to fine-tune (default: the shipped one)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    train_imgs, held = halves()
    res: dict[str, dict] = {a.init: {"model": a.init, "cpu_seconds": 0, "crops": 0}}
    for name, init in (("fine-tuned", a.init), ("from scratch", None)):
        run = a.out / name.replace(" ", "-")
        path, cpu, crops = train(train_imgs, run, a.epochs, init)
        res[name] = {"model": str(path), "cpu_seconds": round(cpu, 1), "crops": crops}
    for name, r in res.items():
        for s in a.sigmas:
            r[f"psnr_{s:g}"] = evaluate(r["model"], held, s)
        print(name, json.dumps(r), flush=True)
    (a.out / "finetune.json").write_text(json.dumps(res, indent=2))
    print("| model | training CPU s | crops | " + " | ".join(f"PSNR sigma {s:g}" for s in a.sigmas) + " |")
    print("|---|---|---|" + "---|" * len(a.sigmas))
    for name, r in res.items():
        print(f"| {name} | {r['cpu_seconds']} | {r['crops']:,} | " + " | ".join(f"{r[f'psnr_{s:g}']:.2f}" for s in a.sigmas) + " |")


if __name__ == "__main__":
    main()
