"""Ablation of the ``features`` anomaly map's settings (aedetect.anomaly.featuremap): which
encoder level and which averaging window localise texture defects best.

Same data and model as bench/anomaly_textures.py: train on 64x64 crops (stride 16) of the top
three quarters of the texture, test on 145 crops of the held-out bottom quarter, half with one
synthetic defect. For each (level, window): the bank from the training crops (at most 30,000
vectors), the map of every test crop, pixel AUROC and AUPRO; image AUROC from the map's maximum.
No smoothing, so the settings alone are compared.

    OMP_NUM_THREADS=1 python bench/texture_feature_knn.py grass --configs '[[1, 5], [1, 7], [2, 3]]'
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from aedetect.anomaly.defects import defect_test_set
from aedetect.data.imageset import ImageSet, scale_to_float
from aedetect.data.sources import texture_crops
from aedetect.anomaly.metrics import image_auroc, pixel_metrics
from aedetect.core.cae import ConvAutoencoder
from aedetect.core.presets import build_config
from aedetect.anomaly.featuremap import build_bank, encoder_features, feature_distance_map
from aedetect.core.train import Trainer

BANK = 30_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("texture")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--configs", default="[[1, 5]]", help="JSON list of [level, pool]")
    args = ap.parse_args()
    torch.manual_seed(0)
    train, val = ImageSet(images=texture_crops(args.texture, 64, 16, rows=(0.0, 0.75))).split(0.1, 0)
    cfg = build_config("small", overrides={
        "data": {"size": [64, 64]}, "model": {"latent_channels": 4},
        "train": {"epochs": args.epochs, "batch_size": 32, "lr": 2e-3, "patience": 100, "grid_every": 0}})
    t0 = time.process_time()
    result = Trainer(ConvAutoencoder(cfg.model), cfg).fit(train, val)
    model = result.model.eval()
    print(json.dumps({"texture": args.texture, "train_cpu_s": round(time.process_time() - t0, 1),
                      "val_mse": round(result.best_val_loss, 5)}), flush=True)
    test = defect_test_set(args.texture, 64, 16, rows=(0.75, 1.0), seed=1)
    for level, pool in json.loads(args.configs):
        bank = build_bank(model, train, cfg.data.scaling, level, pool, BANK)
        maps = torch.cat([feature_distance_map(
            encoder_features(model, scale_to_float(test.images[i:i + 64], 255.0, cfg.data.scaling), level, pool),
            bank, level, (64, 64)) for i in range(0, len(test), 64)])[:, 0]
        row = {"texture": args.texture, "level": level, "pool": pool,
               **{k: round(v, 3) for k, v in pixel_metrics(test.masks[:, 0].numpy(), maps.numpy()).items()},  # type: ignore[union-attr]
               "image_auroc": round(image_auroc(test.labels.numpy(), maps.flatten(1).max(1).values.numpy()), 3)}  # type: ignore[union-attr]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
