"""Markdown rows for docs/benchmarks/sweep.md from run folders (metrics.json + model file).

    python bench/sweep_table.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aedetect.core.modelfile.info import describe


def row(run: Path) -> str:
    m = json.loads((run / "metrics.json").read_text())
    t = json.loads((run / "summary.json").read_text())["training"]
    d = describe(str(run / "model.safetensors"))
    test = f"{m['test_mse']:.5f}" if m["test_mse"] is not None else "n/a"
    return (f"| {run.name} | {d['parameters']:,} | {t['epochs_run']} | {t['train_images']:,} | "
            f"{m['val_mse']:.5f} | {test} | {m['val_mse_unit']:.5f} | {t['train_seconds']:.0f} |")


if __name__ == "__main__":
    print("| run | parameters | epochs | train images | val MSE | test MSE | val MSE [0,1] | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for arg in sys.argv[1:]:
        print(row(Path(arg)))
