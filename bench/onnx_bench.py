"""CPU inference: onnxruntime running the exported graph against PyTorch (``AnomalyDetector.score``)
for the same model file, side by side in one process, alternating, medians reported.

Both sides start from the same decoded uint8 MNIST test images in memory and produce the same
three things per image (reconstruction, map, score); onnxruntime's time includes the uint8 ->
float32 [0, 1] conversion that PyTorch does inside ``score``. Both use ``--threads`` threads.
Before timing, the two sides' scores and flags are compared on every image.

Models: the ``--model`` files given, or two trained here (once, under ``--work``; later runs reuse them) for ``--epochs`` on the first 2,000
training images of digit 3 (speed does not depend on how well they are trained): preset
``small`` with the default map (squared error, smoothed, top-1 % score), and
``recipes/mnist-oneclass.toml`` (dense bottleneck, SSIM map, mean score, cosine kNN on the
encoder's features against a bank of 2,000 training images).

    python bench/onnx_bench.py --data-root ../shared/data --images 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def train_models(data_root: str, epochs: int, out: Path) -> list[Path]:
    """The two default models (see the module docstring), written under ``out``."""
    from aedetect.core.training.fit import fit
    from aedetect.core.presets import build_config
    from aedetect.data.sources import load_torchvision

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "mnist-oneclass.toml"
    paths = []
    for name, rec, extra in (("small-mse", None, {"data": {"size": [28, 28]}}), ("mnist-oneclass", recipe, {})):
        if (out / name / "model.safetensors").is_file():  # trained by an earlier run: the same model
            paths.append(out / name / "model.safetensors")
            continue
        cfg = build_config("small", rec, {**extra, "train": {"epochs": epochs, "device": "cpu", "grid_every": 0}})
        train = load_torchvision("mnist", cfg.data, train=True, normal_class=3, data_root=data_root)
        train = train.subset(list(range(2000)))
        paths.append(fit(train, cfg, out / name).model_path)
    return paths


def ort_session(path: Path, threads: int):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_score(sess, images: torch.Tensor, max_value: float, batch: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Scores of all images through onnxruntime, ``batch`` at a time (all outputs computed)."""
    scores = []
    arr = images.numpy()
    for i in range(0, len(arr), batch):
        _, _, s = sess.run(None, {"images": arr[i:i + batch].astype(np.float32) / np.float32(max_value)})
        scores.append(s)
    return np.concatenate(scores)


def bench_model(path: Path, data, args: argparse.Namespace, work: Path) -> list[tuple[str, int, float, float]]:  # type: ignore[no-untyped-def]
    from aedetect import AnomalyDetector
    from aedetect.anomaly.jobs.export import export_anomaly
    from aedetect.core.modelfile.file import load_model

    det = AnomalyDetector.load(path, device="cpu")
    onnx_path = export_anomaly(load_model(path), work / f"{path.parent.name}.onnx", overwrite=True)
    print(f"{onnx_path}: {onnx_path.stat().st_size / 1e6:.1f} MB", flush=True)
    sess = ort_session(onnx_path, args.threads)
    res = det.score(data, keep_images=False, batch_size=args.batch)
    got = ort_score(sess, data.images, data.max_value, args.batch)
    rel = float(np.abs(got - res.scores).max() / np.abs(res.scores).max())
    flips = int(((got > det.threshold_) != res.flags).sum())
    print(f"{path.parent.name}: {len(data)} images, max relative score difference {rel:.2e}, "
          f"flags differing {flips}, flagged {int(res.flags.sum())}", flush=True)
    rows = []
    for batch, n in ((args.batch, len(data)), (1, min(args.latency_images, len(data)))):
        sub = data.subset(list(range(n)))
        t_pt, t_ort = [], []
        for _ in range(args.repeats):  # alternating, so load changes hit both sides alike
            t0 = time.perf_counter()
            det.score(sub, keep_images=True, batch_size=batch)
            t_pt.append(n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            ort_score(sess, sub.images, sub.max_value, batch)
            t_ort.append(n / (time.perf_counter() - t0))
        rows.append((path.parent.name, batch, statistics.median(t_pt), statistics.median(t_ort)))
        print(f"  batch {batch}: PyTorch {[round(v) for v in t_pt]} img/s, onnxruntime {[round(v) for v in t_ort]} img/s",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--model", action="append", type=Path, help="Anomaly model file(s) (default: train two).")
    ap.add_argument("--epochs", type=int, default=1, help="Training epochs of the default models.")
    ap.add_argument("--images", type=int, default=10000, help="MNIST test images scored per repeat.")
    ap.add_argument("--latency-images", type=int, default=1000, help="Images scored one at a time per repeat.")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("bench/out/onnx"),
                    help="Folder for the trained models (reused by later runs) and the ONNX files.")
    args = ap.parse_args()

    import onnxruntime as ort

    from aedetect.core.config import DataConfig
    from aedetect.data.sources import load_torchvision

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.2f}", flush=True)
    work = args.work
    models = args.model or train_models(args.data_root, args.epochs, work)
    data = load_torchvision("mnist", DataConfig(channels=1, size=(28, 28)), train=False, normal_class=3,
                            data_root=args.data_root, only_normal=False)
    data = data.subset(list(range(min(args.images, len(data)))))
    rows = [r for m in models for r in bench_model(Path(m), data, args, work)]
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}\n")
    print("| model | batch | PyTorch images/s | onnxruntime images/s | onnxruntime / PyTorch |")
    print("|---|---|---|---|---|")
    for name, batch, pt, ox in rows:
        print(f"| {name} | {batch} | {pt:,.0f} | {ox:,.0f} | {ox / pt:.2f}x |")


if __name__ == "__main__":
    main()
