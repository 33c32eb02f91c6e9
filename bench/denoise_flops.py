"""Achieved training FLOP/s of each denoiser architecture against this machine's matmul peak.

One process, every measurement interleaved round-robin (median of --repeats), so the ratios
hold on a shared machine: a 1024x1024 float32 matmul (the peak a convolution can approach), then
one Adam training step of each variant on a batch of 64x64 crops with the noise-level channel,
with and without channels_last. FLOPs of a step (forward + backward) come from
torch.utils.flop_counter.

    OMP_NUM_THREADS=1 python bench/denoise_flops.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from aedetect.core.model.fastmath import flush_denormals
from aedetect.core.presets import build_config
from aedetect.core.training.train import initial_model

VARIANTS = {
    "unet": {"arch": "conv", "widths": [32, 64, 128], "convs_per_level": 2, "skip": True, "residual": True},
    "dncnn": {"arch": "dncnn", "widths": [64], "depth": 17},
    "ffdnet": {"arch": "ffdnet", "widths": [64], "depth": 15},
}


def step_fn(model_cfg: dict, batch: int, patch: int, channels_last: bool) -> tuple[Callable[[], None], float]:
    """One training step of a variant, and its FLOPs."""
    cfg = build_config("denoise-unet", None, {"model": {**model_cfg, "noise_map": True}})
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m = initial_model(cfg).to(memory_format=fmt).train()
    opt = torch.optim.Adam(m.parameters(), 1e-4)
    x = torch.rand(batch, 2, patch, patch).contiguous(memory_format=fmt)
    y = torch.rand(batch, 1, patch, patch)

    def step() -> None:
        loss = (m(x) - y).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        (m(x) - y).pow(2).mean().backward()
    return step, float(fc.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a1, b1 = torch.randn(1024, 1024), torch.randn(1024, 1024)
    jobs: dict[str, tuple[Callable[[], None], float]] = {"matmul 1024^3": (lambda: (a1 @ b1, None)[1], 2 * 1024 ** 3)}
    for name, mc in VARIANTS.items():
        for cl in (True, False):
            jobs[f"{name} ({'channels_last' if cl else 'contiguous'})"] = step_fn(mc, a.batch, a.patch, cl)
    times: dict[str, list[float]] = {k: [] for k in jobs}
    with flush_denormals():
        for fn, _ in jobs.values():  # warm-up
            fn()
            fn()
        for _ in range(a.repeats):
            for k, (fn, _) in jobs.items():
                n = 20 if k.startswith("matmul") else 1
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                times[k].append((time.perf_counter() - t0) / n)
    peak = jobs["matmul 1024^3"][1] / statistics.median(times["matmul 1024^3"])
    print(f"threads {a.threads}, batch {a.batch} x {a.patch}x{a.patch}, median of {a.repeats}\n")
    print("| job | GFLOP per step | ms per step | crops/s | GFLOP/s | of matmul peak |\n|---|---|---|---|---|---|")
    for k, (_, flops) in jobs.items():
        t = statistics.median(times[k])
        crops = "" if k.startswith("matmul") else f"{a.batch / t:.1f}"
        print(f"| {k} | {flops / 1e9:.2f} | {t * 1e3:.1f} | {crops} | {flops / t / 1e9:.0f} | {flops / t / peak:.0%} |")


if __name__ == "__main__":
    main()
