"""The ``pretrained`` map's design on real defects: ELPV cells, the *validation* half of the
defective ones (bench/_elpv.py's split: seed 0, 70 % of the functional cells train), the map
alone (no selection, no threshold): which taps, input side, pooling, bank size and bank
sampling (uniform or greedy coreset), and each image score (max, top 1 %, top 5 %, mean).

    OMP_NUM_THREADS=2 python bench/elpv_map_val.py mono:224:2,4,10:3:10000:random mono:224:2,4,10:3:2000:coreset

Each argument is KIND:SIDE:TAPS:POOL:BANK:SAMPLING; one line per argument with the image
AUROCs and the seconds spent.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(__file__))
import _elpv  # noqa: E402
from aedetect.anomaly.maps.backbone import load_backbone  # noqa: E402

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
im, p, ty = _elpv.load()
p = p / 3.0  # thirds -> probabilities
net = load_backbone()

def taps_of(x, taps, pool):
    x = x.expand(-1, 3, -1, -1)
    h = F.relu6(net._bn0(net._conv_stem(net.pad(x * 2 - 1))))
    out = []
    for i, b in enumerate(net._blocks):
        h = b(h)
        if i + 1 in taps:
            out.append(F.avg_pool2d(h, pool, 1, pool // 2) if pool > 1 else h)
    g = out[0].shape[-2:]
    return torch.cat([t if t.shape[-2:] == g else F.interpolate(t, size=g, mode="bilinear", align_corners=False) for t in out], 1)

@torch.no_grad()
def feats(idx, side, taps, pool):
    out = []
    for i in range(0, len(idx), 32):
        x = torch.from_numpy(im[idx[i:i+32]]).float()[:, None] / 255
        if side != 300:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        out.append(taps_of(x, taps, pool))
    return torch.cat(out)

def vecs(f): return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])

def coreset(v, m, seed=0, proj=128):
    from aedetect.anomaly.maps.featuremap import greedy_coreset
    return greedy_coreset(v, m, seed)

def nn_map(f, bank):
    n, c, h, w = f.shape
    q = vecs(f)
    d = torch.cat([torch.cdist(q[i:i+16384], bank).min(1).values for i in range(0, len(q), 16384)])
    return d.reshape(n, 1, h, w)

def run(kind, side, taps, pool, banksz, bankmode, seed=0):
    t0 = time.time()
    idx = _elpv.split(kind, seed, "validation")
    tr, te_n, val_d = idx["train"], idx["normal"], idx["defective"]
    ftr = feats(tr, side, taps, pool)
    v = vecs(ftr)
    gg = torch.Generator().manual_seed(seed)
    if bankmode == "random":
        bank = v[torch.randperm(len(v), generator=gg)[:banksz]]
    else:
        sub = v[torch.randperm(len(v), generator=gg)[:min(len(v), banksz * 20)]]
        bank = coreset(sub, banksz, seed)
    tfit = time.time() - t0
    test = np.concatenate([te_n, val_d]); y = np.r_[np.zeros(len(te_n)), np.ones(len(val_d))]
    m = nn_map(feats(test, side, taps, pool), bank)
    res = {}
    flat = m.flatten(1)
    res["max"] = roc_auc_score(y, flat.max(1).values)
    for k in (1, 5):
        kk = max(1, round(flat.shape[1] * k / 100))
        res[f"top{k}"] = roc_auc_score(y, flat.topk(kk, 1).values.mean(1))
    res["mean"] = roc_auc_score(y, flat.mean(1))
    print(f"{kind} side={side} taps={taps} pool={pool} bank={banksz}/{bankmode} grid={tuple(m.shape[-2:])} fit={tfit:.0f}s total={time.time()-t0:.0f}s "
          + " ".join(f"{k}={v*100:.1f}" for k, v in res.items()), flush=True)

if __name__ == "__main__":
    for spec in sys.argv[1:]:
        kind, side, taps, pool, banksz, mode = spec.split(":")
        run(kind, int(side), tuple(int(t) for t in taps.split(",")), int(pool), int(banksz), mode)
