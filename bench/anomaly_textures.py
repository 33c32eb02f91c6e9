"""Defect localisation on real textures (issue 3, benchmark 2).

For each scikit-image texture: train the anomaly CAE on defect-free 64x64 crops of the top
three quarters, score crops of the held-out bottom quarter of which half carry one synthetic
defect with an exact mask (aedetect.anomaly.defects), and report image AUROC, pixel AUROC and
AUPRO for the squared-error map, the SSIM map, the encoder-feature map (``map = features``, its
bank built from the training crops as the head builds it) and the learned map (``map =
learned``, its network trained on anomalies made from the training crops as the head trains
it); same trained autoencoder, four maps; and
the pixel AUROC of each defect kind (good crops plus the crops with that kind).

    OMP_NUM_THREADS=1 python bench/anomaly_textures.py --textures brick grass gravel
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch

from aedetect.anomaly.defects import DEFECT_KINDS, defect_test_set
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops
from aedetect.anomaly.metrics import image_auroc, pixel_auroc, pixel_metrics
from aedetect.core.presets import build_config
from aedetect.anomaly.maps import run_model
from aedetect.anomaly.settings import AnomalySettings
from aedetect.anomaly.featuremap import build_bank
from aedetect.anomaly.learned import MADE_UP_KINDS, train_segmenter

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json  # noqa: E402
from _resumable import train_resumable  # noqa: E402


MAPS = ("mse", "ssim", "features", "learned")


def per_kind_pixel_auroc(test: ImageSet, maps: np.ndarray) -> dict[str, float]:
    """Pixel AUROC per defect kind, each over the good crops plus the crops with that kind of
    defect: which kind of defect a map misses."""
    kinds = np.asarray(test.kinds)
    masks = test.masks[:, 0].numpy()  # type: ignore[union-attr]
    return {kind: pixel_auroc(masks[(kinds == kind) | (kinds == "good")], maps[(kinds == kind) | (kinds == "good")])
            for kind in DEFECT_KINDS if (kinds == kind).any()}


def run_texture(name: str, args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    crops = texture_crops(name, args.size, args.stride, rows=(0.0, 0.75))
    data = ImageSet(images=crops)
    train, val = data.split(0.1, 0)
    overrides = json.loads(args.overrides) if args.overrides else {}
    cfg = build_config(args.preset, overrides={
        "data": {"size": [args.size, args.size]},
        "train": {"epochs": args.epochs, "batch_size": 32, "lr": args.lr, "patience": 100, "grid_every": 0},
        **overrides})
    t0 = time.process_time()
    w0 = time.perf_counter()
    run_dir = os.path.join(args.cache, f"{name}-e{args.epochs}") if args.cache else None
    result = train_resumable(cfg, train, val, run_dir)
    train_cpu = time.process_time() - t0
    test = defect_test_set(name, args.size, args.test_stride, rows=(0.75, 1.0), seed=1)
    row: dict[str, Any] = {"texture": name, "train_crops": len(train), "test_crops": len(test),
                           "defective": int(test.labels.sum()), "epochs": len(result.history),
                           "val_loss": result.best_val_loss}
    features = AnomalySettings.from_config({"map": "features"})
    bank = build_bank(result.model, train, cfg.data.scaling, features.feature_level, features.feature_pool,
                      features.feature_bank, seed=0)  # from the training crops, as the head does
    t1 = time.process_time()
    segmenter = train_segmenter(result.model, train, cfg.data.scaling, args.learned_steps, seed=0,
                                kinds=tuple(args.learned_kinds))
    row["learned_train_cpu_seconds"] = round(time.process_time() - t1, 1)
    for sigma in args.sigmas:
        for map_name in MAPS:
            s = AnomalySettings.from_config({"map": map_name, "smooth_sigma": sigma, "score": "topk"})
            raw = run_model(result.model, test.images, 255.0, cfg, s, keep_images=False, bank=bank,
                            segmenter=segmenter)
            pm = pixel_metrics(test.masks[:, 0].numpy(), raw.maps[:, 0].numpy())
            key = f"{map_name}_s{sigma:g}"
            row[f"{key}_image_auroc"] = image_auroc(test.labels, raw.recon_scores)
            row[f"{key}_pixel_auroc"] = pm["pixel_auroc"]
            row[f"{key}_aupro"] = pm["aupro"]
            for kind, auc in per_kind_pixel_auroc(test, raw.maps[:, 0].numpy()).items():
                row[f"{key}_pixel_auroc_{kind}"] = auc
    row["cpu_seconds"] = round(time.process_time() - t0, 1)
    row["train_cpu_seconds"] = round(train_cpu, 1)
    row["wall_seconds"] = round(time.perf_counter() - w0, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--textures", nargs="+", default=["brick", "grass", "gravel"])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--overrides", default='{"model": {"latent_channels": 4}}', help="JSON config overrides, e.g. '{\"model\": {\"latent_channels\": 8}}'")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--test-stride", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 4.0], help="map smoothing sigmas to report")
    ap.add_argument("--learned-steps", type=int, default=1500, help="training steps of the learned map's network")
    ap.add_argument("--learned-kinds", nargs="+", default=list(MADE_UP_KINDS),
                    help="made-up anomaly kinds the learned map trains on (an ablation)")
    ap.add_argument("--json", default="")
    ap.add_argument("--cache", default="", help="folder for epoch checkpoints: a rerun continues training where a cut-off run stopped")
    args = ap.parse_args(argv)
    print(f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}",
          file=sys.stderr)
    rows = []
    for name in args.textures:
        row = run_texture(name, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    names = " / ".join(MAPS)
    print(f"| texture | smoothing sigma | image AUROC ({names}) | pixel AUROC ({names}) | AUPRO ({names}) | CPU s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for sigma in args.sigmas:
            cells = [" / ".join(f"{r[f'{m}_s{sigma:g}_{metric}']:.3f}" for m in MAPS)
                     for metric in ("image_auroc", "pixel_auroc", "aupro")]
            print(f"| {r['texture']} | {sigma:g} | {' | '.join(cells)} | {r['cpu_seconds']} |")
    print(f"\n| texture | map | pixel AUROC by defect kind ({' / '.join(DEFECT_KINDS)}) |")
    print("|---|---|---|")
    for r in rows:
        for m in MAPS:
            key = f"{m}_s{args.sigmas[0]:g}_pixel_auroc_"
            print(f"| {r['texture']} | {m} | {' / '.join(f'{r[key + k]:.3f}' for k in DEFECT_KINDS if key + k in r)} |")
    if args.json:
        write_json(args.json, rows, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
