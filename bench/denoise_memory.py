"""Peak memory and time of tiled vs untiled denoising of one N x N image.

    OMP_NUM_THREADS=1 python bench/denoise_memory.py N MAX_TILE_PIXELS [MODEL]

MODEL defaults to the shipped ``pretrained:gray`` (the table in docs/benchmarks/denoise.md was
measured with the earlier per-sigma gray25 U-Net of the same widths).
Prints the seconds and the process's peak resident memory (getrusage, Linux: kB).
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

from aedetect.denoise.denoiser import Denoiser


def main() -> None:
    n, tiles = int(sys.argv[1]), int(sys.argv[2])
    model = sys.argv[3] if len(sys.argv) > 3 else "pretrained:gray"
    den = Denoiser.load(model, max_tile_pixels=tiles)
    img = np.random.default_rng(0).integers(0, 256, (n, n), dtype=np.uint8)
    t = time.time()
    out = den.denoise(img)
    dt = time.time() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n}x{n} max_tile_pixels={tiles}: {dt:.1f} s, peak RSS {rss:.0f} MB, out {out.dtype} {out.shape}")


if __name__ == "__main__":
    main()
