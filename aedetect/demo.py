"""``aedetect demo``: the whole product on data that ships with the dependencies.

With no arguments and no network it trains on a real texture bundled with scikit-image
(brick), writes a run folder with the model file and pictures, and (with the task heads)
scores held-out crops and denoises a held-out image, in under two minutes on a 2-core CPU.
Each step is a function taking the demo folder; later heads append steps to ``STEPS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops
from aedetect.util.fsutil import new_run_dir
from aedetect.core.presets import build_config

log = logging.getLogger("aedetect")

DEMO_TEXTURE = "brick"
DEMO_CROP = 64


@dataclass
class DemoResult:
    """Folder and headline numbers of a demo run (printed by the CLI)."""

    out: Path
    lines: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


def demo_fit(res: DemoResult, fast: bool = False) -> None:
    """Train the anomaly CAE on defect-free brick crops from the top half of the photograph and
    calibrate it on crops of the next quarter: overlapping crops split at random would share
    their pixels with the training crops and set the threshold too low (aedetect.anomaly.calibration.overlap)."""
    from aedetect.core.training.fit import fit

    crops = texture_crops(DEMO_TEXTURE, DEMO_CROP, 16, rows=(0.0, 0.5))
    band = texture_crops(DEMO_TEXTURE, DEMO_CROP, 16, rows=(0.5, 0.75))
    # A 4-channel 8x8 code (256 numbers for 4,096 pixels): too narrow to copy a defect through.
    cfg = build_config("small", overrides={
        "model": {"latent_channels": 4},
        "data": {"size": [DEMO_CROP, DEMO_CROP]},
        "train": {"epochs": 3 if fast else 16, "batch_size": 32, "lr": 2e-3, "patience": 8},
        # The smoke test ranks the candidates on 48 held-out crops with one anomaly each: the
        # selection is most of the demo's minutes (101 s of the full demo's 3 min 18 s).
        **({"anomaly": {"select_images": 48, "select_draws": 1}} if fast else {}),
    })
    data = ImageSet(images=crops, paths=[f"texture:{DEMO_TEXTURE}:{i}" for i in range(len(crops))])
    calib = ImageSet(images=band, paths=[f"texture:{DEMO_TEXTURE}:calibration:{i}" for i in range(len(band))])
    output = fit(data, cfg, res.out / "anomaly", calibration=calib)
    r = output.result
    res.values["anomaly_model"] = str(output.model_path)
    trained = (f"{len(r.history)} epochs, val loss {r.best_val_loss:.5f}, {r.seconds:.0f} s" if r.history else
               "ImageNet features alone: no autoencoder needed training")
    res.lines.append(f"anomaly model: {output.model_path} ({len(crops)} crops of '{DEMO_TEXTURE}', calibrated on "
                     f"{len(band)} crops of the band below, {trained})")


def demo_score(res: DemoResult, fast: bool = False) -> None:
    """Score held-out crops (bottom quarter) of the texture, half with synthetic defects."""
    from aedetect.anomaly.selection.defects import defect_test_set
    from aedetect.anomaly.jobs.score import score_data

    test = defect_test_set(DEMO_TEXTURE, DEMO_CROP, 16, rows=(0.75, 1.0), seed=1)
    rep = score_data(res.values["anomaly_model"], test, res.out / "score")
    m = rep.metrics
    res.values["anomaly_metrics"] = m
    res.lines.append(f"anomaly scores: {rep.out / 'scores.csv'} ({rep.n_images} held-out crops, "
                     f"{int(test.labels.sum())} with synthetic defects, {rep.n_flagged} flagged, "  # type: ignore[union-attr]
                     f"{rep.heatmaps} heat maps in {rep.out / 'heatmaps'})")
    res.lines.append("  image AUROC {image_auroc:.3f}  AP {image_ap:.3f}  F1 at threshold {f1_at_threshold:.3f}  "
                     "best F1 {best_f1:.3f}  pixel AUROC {pixel_auroc:.3f}  AUPRO {aupro:.3f}".format(**m))


def demo_denoise(res: DemoResult, fast: bool = False) -> None:
    """Train a small denoiser on bundled photographs; noisy | denoised | clean on a held-out one."""
    from aedetect.denoise.demo import run

    run(res, fast)


STEPS: list[Callable[[DemoResult, bool], None]] = [demo_fit, demo_score, demo_denoise]


def run_demo(out: str | Path | None = None, fast: bool = False) -> DemoResult:
    """Run every demo step into a new folder (``out`` or runs/demo-<time>)."""
    res = DemoResult(out=new_run_dir(out, prefix="demo"))
    for step in STEPS:
        step(res, fast)
    return res
