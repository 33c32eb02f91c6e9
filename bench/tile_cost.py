"""What scoring large images in tiles costs (docs/anomaly.md, "Large images"): fit a model with
the pretrained map pinned on N_TRAIN images of SIDE x SIDE cut from scikit-image's gravel
(mirrored to 2048x2048), score 4 more, print CPU seconds.  python bench/tile_cost.py SIDE N_TRAIN"""
import sys
import time

import numpy as np
import skimage.data

from aedetect import AnomalyDetector
side = int(sys.argv[1]); n_train = int(sys.argv[2])
g = skimage.data.gravel()
big = np.block([[g, g[:, ::-1]], [g[::-1], g[::-1, ::-1]]])
big = np.block([[big, big[:, ::-1]], [big[::-1], big[::-1, ::-1]]])  # 2048x2048
rng = np.random.default_rng(0)
def one():
    y, x = rng.integers(0, 2048 - side + 1, 2) if side < 2048 else (0, 0)
    a = big[y:y + side, x:x + side]
    return np.ascontiguousarray(a[::-1] if rng.random() < .5 else a)
train = [one() for _ in range(n_train)]
test = [one() for _ in range(4)]
t0 = time.process_time(); w0 = time.time()
det = AnomalyDetector(epochs=1, anomaly={"map": "pretrained"}).fit(train)
fit_s, fit_w = time.process_time() - t0, time.time() - w0
t0 = time.process_time(); w0 = time.time()
res = det.score(test, keep_images=False)
sc, sw = time.process_time() - t0, time.time() - w0
print(f"side {side}: data.size {det.config_.data.size} image_size {det.config_.data.image_size} tiling {det.calibration_.get('tiling')} "
      f"fit {fit_s:.0f} CPU-s ({fit_w:.0f} s wall) score {sc / 4:.1f} CPU-s per image ({sw / 4:.1f} s wall), maps {res.maps.shape}")
