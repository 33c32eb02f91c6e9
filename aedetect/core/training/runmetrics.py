"""RUN_DIR/metrics.json: the final validation and test reconstruction error of a run.

So that runs compare without TensorBoard, every fit writes the mean squared error of the
restored best model on its validation split and, where the data has one, on its test split
(the test split of a dataset by name, ``test/good`` of an MVTec AD folder). MSE is given in
the model's value space (what ``train.loss = mse`` measures: [0, 1] or [-1, 1]) and on the
[0, 1] scale, so runs with different input scalings compare too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, float_to_unit
from aedetect.errors import AedetectError
from aedetect.util.fsutil import write_text_atomic
from aedetect.util.text import strict_json
from aedetect.core.heads import Corrupt

log = logging.getLogger("aedetect")


@torch.no_grad()
def reconstruction_mse(model: nn.Module, images: ImageSet, cfg: Config, device: torch.device | str = "cpu",
                       corrupt: Corrupt | None = None, seed: int = 0, batch_size: int = 256) -> tuple[float, float]:
    """(MSE in model space, MSE on the [0, 1] scale), averaged over every pixel of ``images``.

    With ``corrupt`` (the denoise head) the model sees corrupted inputs, drawn with a fixed
    seed, and is scored against the clean images.
    """
    model.eval()
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    total = total_unit = 0.0
    count = 0
    scaling = cfg.data.scaling
    for s in range(0, len(images), batch_size):
        target = images.to_float(images.images[s:s + batch_size].to(dev), scaling)
        inp = corrupt(target, gen) if corrupt is not None else target
        out = model(inp).float()
        total += float(((out - target) ** 2).sum())
        total_unit += float(((float_to_unit(out, scaling) - float_to_unit(target, scaling)) ** 2).sum())
        count += target.numel()
    return total / max(count, 1), total_unit / max(count, 1)


def load_test_split(data: str | ImageSet, cfg: Config, normal_class: int | None = None,
                    data_root: str | None = None) -> tuple[ImageSet | None, str]:
    """The held-out test images of ``data`` and a description, or (None, why there are none).

    Datasets by name use their official test split (only ``normal_class`` when one is given);
    an MVTec AD folder uses ``test/good``; plain folders and in-memory sets have none.
    """
    from aedetect.data.sources import (TORCHVISION_DATASETS, find_images, is_mvtec, load_files,
                                       load_torchvision)

    if isinstance(data, ImageSet):
        return None, "data was given as an in-memory ImageSet: no test split is known"
    root = Path(data)
    if root.exists():
        good = root / "test" / "good"
        if is_mvtec(root) and good.is_dir():
            return load_files(find_images(good), cfg.data, str(good)), str(good)
        return None, f"{data}: a plain folder has no test split (the MVTec AD layout has test/good)"
    key = data.lower()
    if key in TORCHVISION_DATASETS:
        test = load_torchvision(key, cfg.data, train=False, normal_class=normal_class,
                                data_root=data_root, only_normal=True)
        return test, f"{key} test split" + (f", class {normal_class}" if normal_class is not None else "")
    return None, f"{data}: this dataset has no separate test split"


def write_run_metrics(path: str | Path, model: nn.Module, cfg: Config, val_set: ImageSet, data: str | ImageSet,
                      device: torch.device | str, *, best_val_loss: float, corrupt: Corrupt | None = None,
                      normal_class: int | None = None, data_root: str | None = None,
                      test_set: ImageSet | None = None, custom_data: bool = False) -> dict[str, Any]:
    """Measure validation (and test) MSE of ``model`` and write them as JSON to ``path``.

    ``custom_data``: the head built its own training images (e.g. denoise crops), so the
    dataset's test split is not comparable and is left out.
    """
    val_mse, val_unit = reconstruction_mse(model, val_set, cfg, device, corrupt, cfg.train.seed + 1)
    out: dict[str, Any] = {
        "task": cfg.task, "loss": cfg.train.loss, "scaling": cfg.data.scaling,
        "best_val_loss": best_val_loss, "val_images": len(val_set),
        "val_mse": val_mse, "val_mse_unit": val_unit,
        "test_mse": None, "test_mse_unit": None, "test_images": 0, "test_split": None, "test_reason": None,
    }
    reason = ""
    if test_set is None and custom_data:
        reason = f"the {cfg.task} head trains on images it builds itself; no comparable test split"
    elif test_set is None:
        try:
            test_set, reason = load_test_split(data, cfg, normal_class, data_root)
        except AedetectError as e:
            log.warning("metrics.json: test split not measured: %s", e)
            test_set, reason = None, str(e)
    else:
        reason = "given test set"
    if test_set is not None and len(test_set):
        mse, unit = reconstruction_mse(model, test_set, cfg, device, corrupt, cfg.train.seed + 2)
        out.update(test_mse=mse, test_mse_unit=unit, test_images=len(test_set), test_split=reason)
    else:
        out["test_reason"] = reason or "empty test split"
    write_text_atomic(path, strict_json(out, indent=2))
    return out
