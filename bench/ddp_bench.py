"""DDP training: 1 rank against N ranks (one thread each) through ``torchrun ... -m aedetect fit``.

Each configuration is launched ``--repeats`` times, alternating, on the same data, seed and
epochs; the table gives the median training images/s (the model file's ``images_per_s``: all
ranks' images over the training seconds) and the best validation loss, which should agree
(same global batch; see aedetect.core.training.distributed).

    python bench/ddp_bench.py --data mnist --normal-class 3 --data-root ../shared/data \\
        --epochs 3 --ranks 1,2 --repeats 3
    python bench/ddp_bench.py ... --device cuda --ranks 1,2,4      # on a machine with GPUs
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import aedetect


def run_once(ranks: int, args: argparse.Namespace, out: Path) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
           "-m", "aedetect", "fit", args.data, "--preset", args.preset, "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--device", args.device, "--out", str(out),
           "--set", "train.grid_every=0"]
    if args.normal_class is not None:
        cmd += ["--normal-class", str(args.normal_class)]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{ranks} ranks failed:\n{r.stderr[-3000:]}")
    t = aedetect.load(out / "model.safetensors").training
    return {"images_per_s": float(t["images_per_s"]), "best_val_loss": float(t["best_val_loss"]),
            "train_seconds": float(t["train_seconds"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--normal-class", type=int, default=3)
    ap.add_argument("--data-root", default=os.environ.get("AEDETECT_DATA_ROOT"))
    ap.add_argument("--preset", default="small")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="OMP threads per rank")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ranks = [int(x) for x in args.ranks.split(",")]
    results: dict[int, list[dict[str, float]]] = {n: [] for n in ranks}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for n in ranks:
                results[n].append(run_once(n, args, Path(tmp) / f"r{n}-{rep}"))
    base = statistics.median(r["images_per_s"] for r in results[ranks[0]])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {args.data} "
          f"class {args.normal_class}, preset {args.preset}, global batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.threads} thread(s) per rank, device {args.device}, median of {args.repeats}")
    print("| ranks | training images/s | ratio | best val loss (median) | train seconds |")
    print("|---|---|---|---|---|")
    for n in ranks:
        ips = statistics.median(r["images_per_s"] for r in results[n])
        print(f"| {n} | {ips:,.0f} | {ips / base:.2f} | "
              f"{statistics.median(r['best_val_loss'] for r in results[n]):.5f} | "
              f"{statistics.median(r['train_seconds'] for r in results[n]):.1f} |")


if __name__ == "__main__":
    main()
