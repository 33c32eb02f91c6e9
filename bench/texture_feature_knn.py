"""Experiment (not a shipped scoring option): localise texture defects by the distance of each
location's encoder features to their nearest neighbour among the training crops' features,
instead of by the reconstruction error.

Why: on stochastic textures (grass, gravel) the autoencoder cannot reconstruct the fine
detail, so its error map is bright everywhere and defects barely stand out (pixel AUROC 0.51 on
grass, docs/benchmarks-anomaly.md section 2). Comparing local feature statistics instead of
pixels is what the feature-memory methods (PatchCore) do with pretrained networks; here the
features are those of the same self-trained encoder, so nothing is downloaded.

Same data and model as bench/anomaly_textures.py: train on 64x64 crops (stride 16) of the top
three quarters of the texture, test on 145 crops of the held-out bottom quarter, half with one
synthetic defect. For each configuration (encoder levels, average-pooling window): features of
the training crops at every location (a random 30,000 of them as the bank), nearest-neighbour
distance of every test location, bilinear upsampling to 64x64, pixel AUROC and AUPRO; image
AUROC from the map's maximum.

    OMP_NUM_THREADS=1 python bench/texture_feature_knn.py grass --configs '[[[1], 5], [[1], 7]]'
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.data.defects import defect_test_set
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops
from aedetect.metrics import image_auroc, pixel_metrics
from aedetect.models.cae import ConvAutoencoder
from aedetect.presets import build_config
from aedetect.train import Trainer

BANK = 30_000


@torch.no_grad()
def features(model: nn.Module, images: Tensor, levels: list[int], pool: int) -> Tensor:
    """(N, C, h, w) encoder features of the chosen levels at the first level's resolution,
    averaged over a ``pool`` x ``pool`` window (stride 1)."""
    out = []
    x = images.float() / 255
    for i in range(0, len(x), 64):
        h = model._pad(x[i:i + 64])  # type: ignore[operator]
        chosen = []
        for j, level in enumerate(model.encoder):  # type: ignore[union-attr]
            h, skip, _ = level(h)
            if j in levels:
                chosen.append(skip)
        size = chosen[0].shape[-2:]
        f = torch.cat([a if a.shape[-2:] == size else F.interpolate(a, size=size, mode="bilinear", align_corners=False)
                       for a in chosen], 1)
        out.append(F.avg_pool2d(f, pool, 1, pool // 2) if pool > 1 else f)
    return torch.cat(out)


def nearest_distance_maps(bank_feats: Tensor, test_feats: Tensor, size: int) -> Tensor:
    """Per-location distance to the nearest bank vector, upsampled to ``size`` x ``size``."""
    c, h, w = test_feats.shape[1:]
    bank = bank_feats.permute(0, 2, 3, 1).reshape(-1, c)
    bank = bank[torch.randperm(bank.shape[0], generator=torch.Generator().manual_seed(0))[:BANK]]
    q = test_feats.permute(0, 2, 3, 1).reshape(-1, c)
    d = torch.cat([torch.cdist(q[i:i + 8192], bank).min(1).values for i in range(0, q.shape[0], 8192)])
    return F.interpolate(d.reshape(-1, 1, h, w), size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("texture")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--configs", default="[[[1], 5]]", help="JSON list of [levels, pool]")
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
    for levels, pool in json.loads(args.configs):
        maps = nearest_distance_maps(features(model, train.images, levels, pool),
                                     features(model, test.images, levels, pool), 64)
        row = {"texture": args.texture, "levels": levels, "pool": pool,
               **{k: round(v, 3) for k, v in pixel_metrics(test.masks[:, 0].numpy(), maps.numpy()).items()},  # type: ignore[union-attr]
               "image_auroc": round(image_auroc(test.labels.numpy(), maps.flatten(1).max(1).values.numpy()), 3)}  # type: ignore[union-attr]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
