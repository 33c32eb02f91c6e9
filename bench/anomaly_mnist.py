"""One-class MNIST, the standard protocol (issue 3, benchmark 1), with an ablation of scoring choices.

For each digit k: train on the MNIST training images of k only (85 % train, 15 % held out
for calibration; early stopping on a further 10 %), score the whole 10,000-image test set
(k normal, the nine other digits anomalous) and report the image AUROC. Every scoring
variant (error map, smoothing, aggregation, latent kNN score) is computed from the same
trained model, so the ablation isolates the scoring choice.

    OMP_NUM_THREADS=1 python bench/anomaly_mnist.py --digits 0 1 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import torch

from aedetect.data.imageset import ImageSet
from aedetect.data.sources import load_torchvision
from aedetect.anomaly.metrics import image_auroc
from aedetect.core.presets import build_config
from aedetect.anomaly.latent import encode_latent, train_latent_bank
from aedetect.anomaly.maps import RawScores, error_map, image_score, run_model
from aedetect.anomaly.settings import AnomalySettings
from aedetect.anomaly.threshold import calibrate_scores, combine_scores

sys.path.insert(0, os.path.dirname(__file__))
from _results import write_json  # noqa: E402
from _resumable import train_resumable  # noqa: E402

# The best scoring (recipes/mnist-oneclass.toml): the deepest encoder level's features on a 7x7
# grid, cosine kNN to a bank of training images, plus the SSIM map's mean.
FEATURE_KNN: dict[str, Any] = {"map": "ssim", "score": "mean", "latent": "knn", "latent_source": "features",
                               "latent_metric": "cosine", "latent_bank": "train", "latent_weight": 3.0}

# name -> Config.anomaly settings; "default" is what the head ships with.
VARIANTS: dict[str, dict[str, Any]] = {
    "default (mse, sigma 1, top-1%)": {},
    "mse, no smoothing, top-1%": {"smooth_sigma": 0},
    "mse, sigma 1, mean": {"score": "mean"},
    "mse, sigma 1, max": {"score": "max"},
    "mse, sigma 1, top-5%": {"topk_percent": 5.0},
    "l1, sigma 1, top-1%": {"map": "l1"},
    "ssim, sigma 1, top-1%": {"map": "ssim"},
    "mix mse+0.05 ssim, top-1%": {"map": "mix"},
    "mse, no smoothing, mean (plain l2 AE)": {"smooth_sigma": 0, "score": "mean"},
    "default + latent kNN (k=5, w=1)": {"latent": "knn"},
    "default + latent kNN (k=5, w=0.3)": {"latent": "knn", "latent_weight": 0.3},
    "ssim, sigma 1, top-5%": {"map": "ssim", "topk_percent": 5.0},
    "ssim, sigma 1, top-1% + latent kNN (k=5, w=1)": {"map": "ssim", "latent": "knn"},
    "ssim, sigma 1, top-5% + latent kNN (k=5, w=1)": {"map": "ssim", "topk_percent": 5.0, "latent": "knn"},
    "ssim, sigma 1, top-10% + latent kNN (k=5, w=1)": {"map": "ssim", "topk_percent": 10.0, "latent": "knn"},
    "ssim, sigma 1, mean + latent kNN (k=5, w=1)": {"map": "ssim", "score": "mean", "latent": "knn"},
    "ssim, sigma 1, top-5% + latent kNN (k=5, w=2)": {"map": "ssim", "topk_percent": 5.0, "latent": "knn",
                                                      "latent_weight": 2.0},
    "ssim, sigma 1, top-5% + latent kNN (k=1, w=1)": {"map": "ssim", "topk_percent": 5.0, "latent": "knn",
                                                      "latent_k": 1},
    "ssim, sigma 1, mean": {"map": "ssim", "score": "mean"},
    "ssim, no smoothing, mean + latent kNN (k=5, w=1)": {"map": "ssim", "smooth_sigma": 0, "score": "mean",
                                                         "latent": "knn"},
    "ssim, sigma 1, mean + latent kNN (k=5, w=0.5)": {"map": "ssim", "score": "mean", "latent": "knn",
                                                      "latent_weight": 0.5},
    "ssim window 7, sigma 1, mean + latent kNN (k=5, w=1)": {"map": "ssim", "ssim_window": 7, "score": "mean",
                                                             "latent": "knn"},
    # The latent vector and its bank (aedetect.anomaly.head.latent_vectors, train_latent_bank).
    "ssim, sigma 1, mean + latent kNN, train bank (k=5, w=1)": {"map": "ssim", "score": "mean", "latent": "knn",
                                                                "latent_bank": "train"},
    "ssim, sigma 1, mean + feature kNN (7x7, euclidean, train bank, k=5, w=3)": {
        **FEATURE_KNN, "latent_metric": "euclidean"},
    "ssim, sigma 1, mean + feature kNN (7x7, cosine, calib bank, k=5, w=3)": {**FEATURE_KNN, "latent_bank": "calib"},
    "ssim, sigma 1, mean + feature kNN (4x4, cosine, train bank, k=5, w=3)": {**FEATURE_KNN, "latent_grid": 4},
    "ssim, sigma 1, mean + feature kNN (7x7, cosine, train bank, k=5, w=1)": {**FEATURE_KNN, "latent_weight": 1.0},
    "feature kNN alone (7x7, cosine, train bank, k=5)": {**FEATURE_KNN, "recon_weight": 0.0},
    "ssim, sigma 1, mean + feature kNN (7x7, cosine, train bank, k=5, w=3)": FEATURE_KNN,
}


def rescore(raw: RawScores, s: AnomalySettings) -> RawScores:
    """Maps and reconstruction scores of another variant from stored inputs and reconstructions."""
    maps = torch.cat([error_map(raw.inputs[i:i + 1000], raw.recon[i:i + 1000], s)
                      for i in range(0, raw.inputs.shape[0], 1000)])
    return RawScores(inputs=raw.inputs, recon=raw.recon, maps=maps,
                     recon_scores=image_score(maps, s.score, s.topk_percent), codes=raw.codes)


def run_digit(k: int, args: argparse.Namespace, test: ImageSet) -> dict[str, Any]:
    root = args.data_root
    cfg = build_config(args.preset, overrides={
        "data": {"size": [28, 28]},
        "train": {"epochs": args.epochs, "batch_size": 64, "lr": args.lr, "patience": 100, "grid_every": 0,
                  "seed": 0},
        **(json.loads(args.overrides) if args.overrides else {})})
    normals = load_torchvision("mnist", cfg.data, train=True, normal_class=k, data_root=root)
    rest, calib = normals.split(0.15, 7)
    train, val = rest.split(0.1, 0)
    t0 = time.process_time()
    w0 = time.perf_counter()
    torch.manual_seed(0)
    run_dir = os.path.join(args.cache, f"digit{k}-e{args.epochs}") if args.cache else None
    result = train_resumable(cfg, train, val, run_dir)
    train_cpu = time.process_time() - t0  # of this invocation only, when resumed
    labels = (test.classes != k).long().numpy()  # type: ignore[union-attr]
    row: dict[str, Any] = {"digit": k, "train_images": len(train), "calib_images": len(calib),
                           "epochs": len(result.history), "val_loss": result.best_val_loss,
                           "train_cpu_s": round(train_cpu, 1)}
    # One forward pass per set; every variant recomputes only maps and scores from it.
    knn = AnomalySettings.from_config({"latent": "knn"})
    raw_path = os.path.join(run_dir, "raw.pt") if run_dir else ""
    if raw_path and os.path.exists(raw_path):  # a cut-off run got this far
        raw_cal0, raw_test0 = (RawScores(**d) for d in torch.load(raw_path))
    else:
        raw_cal0 = run_model(result.model, calib.images, 255.0, cfg, knn, batch_size=512)
        raw_test0 = run_model(result.model, test.images, 255.0, cfg, knn, batch_size=512)
        if raw_path:
            torch.save([vars(raw_cal0), vars(raw_test0)], raw_path)
    done_path = os.path.join(run_dir, "variants.json") if run_dir else ""
    done = json.load(open(done_path)) if done_path and os.path.exists(done_path) else {}
    row.update(done)
    vectors: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}
    for name, overrides in VARIANTS.items():
        if name in done:
            continue
        s = AnomalySettings.from_config(overrides)
        raw_cal, raw = rescore(raw_cal0, s), rescore(raw_test0, s)
        key = (s.latent_source, s.latent_metric, s.latent_level, s.latent_grid)
        if s.latent == "knn" and key != ("code", "euclidean", -1, 7):  # another latent vector: one more pass
            if key not in vectors:
                vectors[key] = (encode_latent(result.model, calib.images, 255.0, cfg, s, batch_size=512),
                                encode_latent(result.model, test.images, 255.0, cfg, s, batch_size=512))
            raw_cal.codes, raw.codes = vectors[key]
        bank = train_latent_bank(result.model, train, cfg, s, seed=cfg.train.seed) \
            if s.latent == "knn" and s.latent_bank == "train" else None
        cal = calibrate_scores(raw_cal, s, len(calib), bank)
        scores = combine_scores(raw, cal, s).numpy()
        row[name] = image_auroc(labels, scores)
        if not overrides:
            row["test_fpr_at_1pct_threshold"] = float((scores[labels == 0] > cal["threshold"]).mean())
        if done_path:
            with open(done_path, "w") as fh:
                json.dump({k: v for k, v in row.items() if k in VARIANTS or k == "test_fpr_at_1pct_threshold"}, fh)
    row["cpu_s"] = round(time.process_time() - t0, 1)
    row["wall_s"] = round(time.perf_counter() - w0, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--digits", nargs="+", type=int, default=list(range(10)))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--overrides", default='{"model": {"widths": [32, 64], "bottleneck": "dense", "latent_dim": 32, "norm": "batch"}}')
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--data-root", default=os.environ.get("AEDETECT_DATA_ROOT"))
    ap.add_argument("--json", default="")
    ap.add_argument("--cache", default="", help="folder for epoch checkpoints: a rerun continues training where a cut-off run stopped")
    args = ap.parse_args(argv)
    print(f"torch threads {torch.get_num_threads()}", file=sys.stderr)
    cfg = build_config(args.preset, overrides={"data": {"size": [28, 28]}})
    test = load_torchvision("mnist", cfg.data, train=False, normal_class=0, data_root=args.data_root,
                            only_normal=False)
    assert len(test) == 10000
    rows = []
    for k in args.digits:
        row = run_digit(k, args, test)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            write_json(args.json, {"args": vars(args), "rows": rows}, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
