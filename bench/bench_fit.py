"""Training throughput: ``aedetect fit`` against a plain PyTorch loop written the way the
PyTorch tutorials write it, side by side in one process, alternating, medians reported.

Tutorial side: ``torchvision.datasets.MNIST`` yields a PIL image per sample, transformed per
sample by ``ToTensor()`` and ``Normalize((0.5,), (0.5,))``, batched by a ``DataLoader``
(shuffle, default ``num_workers=0`` as in the tutorials), the same ConvAutoencoder, the same
batch size, optimizer and number of epochs, MSE loss.

aedetect side: ``aedetect.core.training.fit.fit`` on the same images (decoded once to a uint8 tensor,
batches sliced and scaled on the device), timing only its training phase (the per-epoch
``seconds`` it records) and, separately, the whole call including validation and run files.

    python bench/bench_fit.py --data-root ../shared/data --images 10000 --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch
from torch import nn


def tutorial_epoch_seconds(model: nn.Module, data_root: str, n: int, epochs: int, batch: int, lr: float,
                           flush: bool = False) -> float:
    """Seconds per epoch of the tutorial-style loop (PIL dataset, per-sample transforms);
    ``flush``: the same loop with denormals flushed on every thread (aedetect.core.model.fastmath), to
    show how much of aedetect's lead is that one setting."""
    from aedetect.core.model.fastmath import flush_denormals

    if flush:
        with flush_denormals():
            return tutorial_epoch_seconds(model, data_root, n, epochs, batch, lr)
    import torchvision.transforms as T
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import MNIST

    ds = MNIST(data_root, train=True, download=True,
               transform=T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    loader = DataLoader(Subset(ds, range(n)), batch_size=batch, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    crit = nn.MSELoss()
    model.train()
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for x, _ in loader:
            x = (x + 1) / 2  # the same [0, 1] targets the sigmoid model predicts
            out = model(x)
            loss = crit(out, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def aedetect_epoch_seconds(cfg, data_root: str, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(median training seconds per epoch, whole fit() wall seconds per epoch)."""
    from aedetect.data.sources import load_training_data
    from aedetect.core.training.fit import fit

    t0 = time.perf_counter()
    data = load_training_data("mnist", cfg.data, data_root=data_root)
    data = data.subset(list(range(n)))
    with tempfile.TemporaryDirectory() as d:
        out = fit(data, cfg, f"{d}/run")
    wall = time.perf_counter() - t0
    # fit() trains on what is left after the validation (and the anomaly head's calibration)
    # split: express both figures per n images so they compare with the tutorial's epoch.
    hist = out.result.history
    train_n = round(hist[0]["images_per_s"] * hist[0]["seconds"])
    per_epoch = statistics.median(h["seconds"] for h in hist) * n / train_n
    wall_per_epoch = wall / len(hist) * n / train_n
    return per_epoch, wall_per_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--preset", default="small")
    args = ap.parse_args()

    from aedetect.core.model.cae import ConvAutoencoder
    from aedetect.core.presets import build_config

    cfg = build_config(args.preset, overrides={
        "data": {"size": [28, 28]},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 1e-3, "device": "cpu",
                  "patience": 100, "grid_every": 0}})
    tut, tut_flush, ours, ours_wall = [], [], [], []
    for r in range(args.repeats):
        torch.manual_seed(r)
        tut.append(tutorial_epoch_seconds(ConvAutoencoder(cfg.model), args.data_root, args.images,
                                          args.epochs, args.batch_size, 1e-3))
        torch.manual_seed(r)
        tut_flush.append(tutorial_epoch_seconds(ConvAutoencoder(cfg.model), args.data_root, args.images,
                                                args.epochs, args.batch_size, 1e-3, flush=True))
        o, w = aedetect_epoch_seconds(cfg, args.data_root, args.images)
        ours.append(o)
        ours_wall.append(w)
        print(f"repeat {r + 1}: tutorial {args.images / tut[-1]:,.0f} img/s, "
              f"tutorial + flushed denormals {args.images / tut_flush[-1]:,.0f} img/s, "
              f"aedetect {args.images / ours[-1]:,.0f} img/s (training), "
              f"{args.images / ours_wall[-1]:,.0f} img/s (whole fit incl. validation and files)", flush=True)
    mt, mf, mo, mw = (statistics.median(v) for v in (tut, tut_flush, ours, ours_wall))
    params = ConvAutoencoder(cfg.model).parameter_counts()["parameters"]
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; preset {args.preset} ({params:,} parameters), 28x28 MNIST, "
          f"{args.images} images, batch {args.batch_size}, {args.epochs} epochs x {args.repeats} repeats")
    print("| pipeline | median images/s | ratio |")
    print("|---|---|---|")
    print(f"| PyTorch tutorial loop (PIL + ToTensor/Normalize + DataLoader) | {args.images / mt:,.0f} | 1.00 |")
    print(f"| the same tutorial loop with denormals flushed (aedetect.core.model.fastmath) | {args.images / mf:,.0f} | {mt / mf:.2f} |")
    print(f"| aedetect fit, training phase | {args.images / mo:,.0f} | {mt / mo:.2f} |")
    print(f"| aedetect fit, whole call (load, validation, checkpoints, PNGs) | {args.images / mw:,.0f} | {mt / mw:.2f} |")


if __name__ == "__main__":
    main()
