"""Training that survives being cut off: the 2-core benchmark machine is shared, so a bench run
is split into commands of under 10 minutes, each continuing from the last epoch checkpoint."""

from __future__ import annotations

from pathlib import Path

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet
from aedetect.core.cae import ConvAutoencoder
from aedetect.core.train import FitResult, Trainer


def train_resumable(cfg: Config, train: ImageSet, val: ImageSet, run_dir: str | Path | None) -> FitResult:
    """``Trainer.fit``, resuming from ``run_dir/checkpoint.safetensors`` when an earlier run left one."""
    trainer = Trainer(ConvAutoencoder(cfg.model), cfg, run_dir=run_dir)
    if run_dir is not None and (Path(run_dir) / "checkpoint.safetensors").is_file():
        trainer.load_state(Path(run_dir) / "checkpoint.safetensors")
    return trainer.fit(train, val)
