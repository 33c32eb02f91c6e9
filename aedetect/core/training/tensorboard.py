"""``fit --tensorboard``: loss curves, reconstructions and the embedding projector.

Event files go to ``ROOT/<model>/<run-name>/`` (ROOT defaults to ``runs``), so
``tensorboard --logdir runs/`` shows runs of one model (with and without weight decay, with
different bottlenecks) side by side. Logged:

* ``loss_step/train`` every optimisation step, ``loss_step/val`` at the last step of each epoch;
* ``loss_epoch/train``, ``loss_epoch/val`` and ``lr`` per epoch;
* ``reconstructions``: validation inputs over their reconstructions, per epoch;
* the latent codes of the validation images of the best epoch for the embedding projector,
  with their class / label as metadata where known and thumbnails as sprites.

tensorboard is an optional dependency (``pip install 'aedetect[tensorboard]'``); only rank 0
writes.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, float_to_unit
from aedetect.errors import AedetectError
from aedetect.core.heads import Corrupt
from aedetect.core.training.train import is_main_process

log = logging.getLogger("aedetect")

# The projector's sprite sheet is at most 8192 px on a side.
SPRITE_SIDE = 8192
MAX_EMBED = 10000


def summary_writer_class() -> Any:
    """torch's SummaryWriter, or one clear error line when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise AedetectError("--tensorboard needs the tensorboard package: pip install 'aedetect[tensorboard]'") from None
    return SummaryWriter


def model_tag(cfg: Config) -> str:
    """A short folder name for an architecture, e.g. 'mlp-1000-100' or 'conv-32-64-dense200'."""
    m = cfg.model
    if m.arch == "mlp":
        return "mlp-" + "-".join(map(str, m.mlp_hidden))
    tag = "conv-" + "-".join(map(str, m.widths))
    if m.bottleneck == "dense":
        tag += f"-dense{m.latent_dim}"
    elif m.latent_channels:
        tag += f"-code{m.latent_channels}"
    return tag


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "run"


def tensorboard_dir(root: str | Path, model_name: str, run_name: str) -> Path:
    """ROOT/<model>/<run>, numbered (-2, -3, ...) if that run folder already holds events."""
    base = Path(root) / safe_name(model_name) / safe_name(run_name)
    p, i = base, 1
    while p.exists() and any(p.iterdir()):
        i += 1
        p = base.with_name(f"{base.name}-{i}")
    return p


def _labels(images: ImageSet) -> tuple[list[Any], list[str] | None]:
    """Projector metadata: class and/or normal/anomalous label per image, with a header."""
    cols: list[tuple[str, list[str]]] = []
    if images.classes is not None:
        cols.append(("class", [str(int(c)) for c in images.classes]))
    if images.labels is not None:
        cols.append(("label", ["anomalous" if int(v) else "normal" for v in images.labels]))
    if images.kinds:
        cols.append(("kind", list(images.kinds)))
    if not cols:
        return [], None
    if len(cols) == 1:
        return cols[0][1], None
    return [list(r) for r in zip(*[c for _, c in cols])], [h for h, _ in cols]


class TensorBoardLogger:
    """Trainer callbacks (``on_step``, ``on_epoch``) plus :meth:`finish` for the projector."""

    def __init__(self, log_dir: str | Path, cfg: Config, val: ImageSet, corrupt: Corrupt | None = None,
                 n_images: int = 8, max_embed: int = MAX_EMBED) -> None:
        self.log_dir = Path(log_dir)
        self.writer = summary_writer_class()(str(self.log_dir))
        self.cfg, self.val, self.corrupt = cfg, val, corrupt
        self.n_images, self.max_embed = n_images, max_embed
        self.last_step = 0
        self.writer.add_text("config", "```\n" + _toml_like(cfg.to_dict()) + "\n```", 0)

    @classmethod
    def for_run(cls, root: str | Path, cfg: Config, val: ImageSet, run_dir: Path, *, run_name: str | None = None,
                model_name: str | None = None, corrupt: Corrupt | None = None) -> "TensorBoardLogger | None":
        """The logger of one fit run (None on ranks other than 0)."""
        if not is_main_process():
            return None
        path = tensorboard_dir(root, model_name or model_tag(cfg), run_name or run_dir.name)
        log.info("tensorboard: %s (view with: tensorboard --logdir %s)", path, root)
        return cls(path, cfg, val, corrupt)

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments for :class:`aedetect.core.training.train.Trainer`."""
        return {"on_step": self.on_step, "on_epoch": self.on_epoch}

    def on_step(self, step: int, loss: float) -> None:
        self.last_step = step
        self.writer.add_scalar("loss_step/train", loss, step)

    def on_epoch(self, epoch: int, row: dict[str, Any], model: nn.Module) -> None:
        w = self.writer
        w.add_scalar("loss_epoch/train", row["train_loss"], epoch)
        w.add_scalar("loss_epoch/val", row["val_loss"], epoch)
        w.add_scalar("loss_step/val", row["val_loss"], self.last_step)
        w.add_scalar("lr", row["lr"], epoch)
        w.add_image("reconstructions", self.recon_grid(model), epoch)
        w.flush()

    @torch.no_grad()
    def recon_grid(self, model: nn.Module) -> Tensor:
        """(3, H, W) grid: validation inputs (the corrupted ones for denoising) over outputs."""
        from aedetect.core.plots import make_grid, upscale_for_display

        was_training = model.training
        model.eval()
        dev = next(model.parameters()).device
        s = self.cfg.data.scaling
        target = self.val.to_float(self.val.images[: self.n_images].to(dev), s)
        inp = self.corrupt(target, torch.Generator().manual_seed(0)) if self.corrupt else target
        out = model(inp).float()
        model.train(was_training)
        rows = [inp[:, :target.shape[1]], out] + ([target] if self.corrupt else [])
        batch = torch.cat([upscale_for_display(float_to_unit(r.float().cpu(), s)) for r in rows])
        return make_grid(batch, nrow=len(target), padding=2, pad_value=1.0)

    @torch.no_grad()
    def finish(self, model: nn.Module, step: int) -> None:
        """Write the validation codes of ``model`` (the best epoch's) to the projector, close."""
        from aedetect.core.model.codes import encode_set

        val = self.val if len(self.val) <= self.max_embed else self.val.subset(list(range(self.max_embed)))
        if len(val) < len(self.val):
            log.info("tensorboard: projecting the first %d of %d validation images", len(val), len(self.val))
        codes = encode_set(model, val, self.cfg.data.scaling)
        meta, header = _labels(val)
        thumbs = _sprites(val, self.cfg.data.scaling)
        self.writer.add_embedding(codes, metadata=meta or None, metadata_header=header,
                                  label_img=thumbs, global_step=step, tag="latent_codes")
        self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def _sprites(images: ImageSet, scaling: str) -> Tensor | None:
    """Thumbnails for the projector, shrunk so the sprite sheet fits 8192 px."""
    import math

    import torch.nn.functional as F

    n = len(images)
    side = min(32, SPRITE_SIDE // math.ceil(math.sqrt(n)))
    if side < 4:
        return None
    h, w = images.shape[-2:]
    size = (max(1, h * side // max(h, w)), max(1, w * side // max(h, w)))
    out = []
    for s in range(0, n, 256):  # in chunks: a large validation set never sits in memory as floats
        x = float_to_unit(images.to_float(images.images[s:s + 256], scaling), scaling)
        if max(h, w) > side:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        out.append(x.clamp(0, 1))
    return torch.cat(out)


def _toml_like(d: dict[str, Any], prefix: str = "") -> str:
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(_toml_like(v, f"{prefix}{k}."))
        else:
            lines.append(f"{prefix}{k} = {v!r}")
    return "\n".join(x for x in lines if x)
