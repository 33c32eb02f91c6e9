"""The one training loop every task head uses.

Batches are sliced from the decoded-once integer cache and scaled on the device: no
DataLoader workers, no PIL, no per-sample transforms. On CUDA it uses mixed precision
(bf16 where supported, else fp16 with a GradScaler) and channels_last; on the CPU,
channels_last and denormals flushed on every thread (aedetect.core.model.fastmath). Validation loss every
epoch; the best epoch is restored at the end; early stopping with patience; a checkpoint
each epoch so ``--resume`` continues an interrupted run. Under torchrun the model is wrapped
in DistributedDataParallel and each step's batch is dealt to the ranks (aedetect.core.training.distributed);
only rank 0 writes files.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from aedetect.core.training import distributed
from aedetect.core.modelfile.file import TrainingState, load_training_state, save_training_state
from aedetect.core.config import Config
from aedetect.core.heads import Corrupt
from aedetect.data.imageset import ImageSet, float_to_unit
from aedetect.core.model.fastmath import flush_denormals, preferred_memory_format
from aedetect.util.fsutil import write_text_atomic
from aedetect.core.model.losses import make_loss
from aedetect.errors import TrainingError
from aedetect.util.progress import progress_bar
from aedetect.util.launch import is_secondary_rank

if TYPE_CHECKING:
    from aedetect.core.model.cae import ConvAutoencoder

log = logging.getLogger("aedetect")

EpochCallback = Callable[[int, dict[str, Any], nn.Module], None]
# (global step, training loss of that step): per-step logging such as TensorBoard scalars.
StepCallback = Callable[[int, float], None]


class OutputCollapsed(TrainingError):
    """The model outputs the same image whatever its input (see :meth:`Trainer.output_spread`)."""


# Collapsed: the outputs vary across images by less than this fraction of the targets' spread.
COLLAPSE_RATIO = 0.01
# ... and the validation loss fell by less than this fraction since the epoch before.
FLAT_LOSS = 1e-3
# The run's duration is estimated (and logged) from this many steps of its first epoch.
ETA_STEPS = 20


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from aedetect.errors import ConfigError

        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def is_main_process() -> bool:
    """Rank 0 (or a single process) is the only writer of run files."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return not is_secondary_rank()


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def initial_model(cfg: Config) -> ConvAutoencoder:
    """The untrained model, its initial weights drawn right after seeding with
    ``cfg.train.seed``: without this they came from whatever state the global generator was
    in, and two runs with the same ``--seed`` started from different weights."""
    from aedetect.core.model.cae import ConvAutoencoder

    seed_everything(cfg.train.seed)
    return ConvAutoencoder(cfg.model)


@dataclass
class FitResult:
    """What a finished (or early-stopped) training run produced."""

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_loss: float
    seconds: float
    images_per_s: float
    device: str
    run_dir: Path | None = None
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"epochs_run": len(self.history), "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss, "train_seconds": round(self.seconds, 2),
                "images_per_s": round(self.images_per_s, 1), "device": self.device,
                "stopped_early": self.stopped_early}


def scheduled_lr(cfg: Config, step: int, total: int) -> float:
    """The learning rate at global step ``step`` of ``total`` (0-based): constant, or a cosine
    from ``train.lr`` down to ``train.lr_min`` over the whole run. A function of the step alone,
    so a resumed run continues the schedule where the cut one was."""
    t = cfg.train
    if t.schedule != "cosine" or total <= 1:
        return t.lr
    return t.lr_min + (t.lr - t.lr_min) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """Optimizer by name; weight decay on all weights or, as the single-layer tutorial does,
    on the encoder only (an L2 penalty on the code-producing half)."""
    t = cfg.train
    args: dict[str, Any] = {"lr": t.lr, **t.optimizer_args}
    wd = args.pop("weight_decay", t.weight_decay)
    if t.weight_decay_scope == "encoder" and hasattr(model, "encoder_modules"):
        enc = {id(p) for m in model.encoder_modules() for p in m.parameters()}  # type: ignore[operator]
        groups = [
            {"params": [p for p in model.parameters() if id(p) in enc], "weight_decay": wd},
            {"params": [p for p in model.parameters() if id(p) not in enc], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": list(model.parameters()), "weight_decay": wd}]
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
           "rmsprop": torch.optim.RMSprop}[t.optimizer]
    try:
        return cls(groups, **args)
    except TypeError as e:
        from aedetect.errors import ConfigError

        raise ConfigError(f"train.optimizer_args: {e}") from None


def probe_epoch_seconds(cfg: Config, train: ImageSet, probe: int = 8) -> float:
    """About how long one training epoch of ``cfg``'s model on ``train`` takes here: one
    optimisation step on ``probe`` images timed after a warm-up step, scaled to the epoch's
    images (plus a tenth for validation). A few seconds even where an epoch takes minutes, so a
    head can decide whether training fits a time budget before starting it."""
    trainer = Trainer(initial_model(cfg), cfg)
    if not trainer.trainable:
        return 0.0
    n = min(probe, len(train))
    idx = torch.arange(n)
    trainer.model.train()

    def step() -> None:
        inp, target = trainer._batch(train, idx)
        loss = trainer.loss_fn(trainer._forward(inp), target)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()

    with flush_denormals():
        step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return 1.1 * seconds * len(train) / n


class Trainer:
    """Runs epochs over an :class:`ImageSet`; ``corrupt`` turns clean inputs into noisy ones
    (the denoise head), otherwise the model reconstructs its input (the anomaly head)."""

    def __init__(self, model: nn.Module, cfg: Config, run_dir: str | Path | None = None,
                 corrupt: Corrupt | None = None, on_epoch: EpochCallback | None = None,
                 on_step: StepCallback | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.train.device)
        self.model = model.to(self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.corrupt = corrupt
        self.on_epoch = on_epoch
        self.on_step = on_step
        self.loss_fn = make_loss(cfg.train.loss, cfg.data.scaling)
        cuda = self.device.type == "cuda"
        self.amp_dtype: torch.dtype | None = None
        if cuda and cfg.train.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.memory_format = preferred_memory_format(cfg.model.arch, self.device, cfg.train.channels_last)
        self.model.to(memory_format=self.memory_format)
        self.dist = distributed.current()
        # What a training step runs: the model, or its DDP wrapper, which averages gradients
        # over the ranks (evaluation and pictures use the bare model: no collectives there).
        self.train_model: nn.Module = self.model
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            self.train_model = DistributedDataParallel(
                self.model, device_ids=[torch.cuda.current_device()] if cuda else None)
        # No parameters (``model.arch = none``): nothing to train, fit() returns the model as it is.
        self.trainable = any(True for _ in self.model.parameters())
        self.optimizer = make_optimizer(self.model, cfg) if self.trainable else None  # type: ignore[assignment]
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 1
        self.best_val = math.inf
        self.best_epoch = 0
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.generator = seed_everything(cfg.train.seed)
        # The shuffled order: one generator in one process (as before DDP existed); under DDP
        # the order must be the same on every rank and the corruption differ between ranks.
        self.order_generator = self.generator
        if self.dist.active:
            self.order_generator = torch.Generator().manual_seed(cfg.train.seed)
            self.generator.manual_seed(cfg.train.seed + 1_000_003 * (self.dist.rank + 1))

    # ---- batches ------------------------------------------------------------------------
    def _batch(self, data: ImageSet, idx: Tensor) -> tuple[Tensor, Tensor]:
        x = data.images[idx].to(self.device, non_blocking=True)
        target = data.to_float(x, self.cfg.data.scaling).contiguous(memory_format=self.memory_format)
        inp = self.corrupt(target, self.generator) if self.corrupt is not None else target
        return inp, target

    def _forward(self, inp: Tensor, model: nn.Module | None = None) -> Tensor:
        model = self.model if model is None else model
        if self.amp_dtype is not None:
            with torch.autocast("cuda", dtype=self.amp_dtype):
                return model(inp)
        return model(inp)

    @torch.no_grad()
    def evaluate(self, data: ImageSet) -> float:
        """Mean loss over a set, in eval mode, with a fixed corruption seed; under DDP each rank
        takes every world-th image and the sums are added over the ranks."""
        self.model.eval()
        saved = self.generator.get_state()
        self.generator.manual_seed(self.cfg.train.seed + 1)
        total, n = 0.0, 0
        bs = self.cfg.train.batch_size * 2
        for s in range(0, len(data), bs):
            idx = torch.arange(s, min(s + bs, len(data)))[self.dist.rank::self.dist.world]
            if not len(idx):
                continue
            inp, target = self._batch(data, idx)
            total += float(self.loss_fn(self._forward(inp), target)) * len(idx)
            n += len(idx)
        self.generator.set_state(saved)
        total, n = self.dist.sum(total, n)
        return total / max(n, 1)

    @torch.no_grad()
    def output_spread(self, data: ImageSet) -> tuple[float, float]:
        """(spread of the outputs, spread of the inputs) across up to 64 images: the standard
        deviation over the images at each pixel, averaged over the pixels. A model that gives
        every input the same output (a black image, the mean image) has an output spread near 0.
        Uncorrupted inputs and no random numbers drawn, so a healthy run is not changed by it."""
        self.model.eval()
        x = data.images[:64].to(self.device)
        target = data.to_float(x, self.cfg.data.scaling).contiguous(memory_format=self.memory_format)
        out = self._forward(target).float()
        return float(out.std(0).mean()), float(target.float().std(0).mean())

    def _check_collapse(self, epoch: int, val: ImageSet, val_loss: float) -> None:
        """Collapsed: the same output for every image *and* a validation loss that stopped
        moving. A slow start also outputs nearly one image for an epoch or two, but its loss
        still falls (8x8 digits: 0.153, 0.142, 0.136, ...); a collapsed run's stays put (28x28
        MNIST sevens: 0.10181, 0.10176, 0.10176, ...)."""
        if self.corrupt is not None or len(val) < 2 or not self.history:  # denoisers predict noise
            return
        before = self.history[-1]["val_loss"]
        if not before - val_loss < FLAT_LOSS * abs(before):
            return
        out, inp = self.output_spread(val)
        if inp > 1e-3 and out < COLLAPSE_RATIO * inp:
            raise OutputCollapsed(f"training collapsed at epoch {epoch}: the model gives every image the same "
                                  f"output (spread {out:.2g} against the images' {inp:.2g}) and the validation "
                                  f"loss stopped falling ({before:.5g} -> {val_loss:.5g})")

    def _log_eta(self, seconds: float, done: int, steps: int, epoch: int) -> None:
        """Say early how long the run will take (from the first steps' speed, validation not
        counted), so a two-hour recipe on a laptop is no surprise."""
        left = (self.cfg.train.epochs - epoch + 1) * steps - done
        eta = seconds / done * left
        if eta < 30:
            return
        log.info("about %s for the %d epochs left at this speed (%.2f s per step on %s)",
                 _duration(eta), self.cfg.train.epochs - epoch + 1, seconds / done, self.device)

    def _val_psnr(self, val_loss: float) -> float | None:
        """The validation PSNR a denoiser's MSE loss means (of the mean MSE, in dB), else None."""
        if self.corrupt is None or self.cfg.train.loss != "mse" or not val_loss > 0:
            return None
        span = 2.0 if self.cfg.data.scaling == "symmetric" else 1.0
        return 10 * math.log10(span ** 2 / val_loss)

    # ---- resume -------------------------------------------------------------------------
    def load_state(self, path: str | Path) -> None:
        st = load_training_state(path)
        self.model.load_state_dict(st.model_state)
        self.optimizer.load_state_dict(st.optimizer_state)
        self.best_state = st.best_state
        self.history = st.info.get("history", [])
        self.best_val = st.info.get("best_val", math.inf)
        self.best_epoch = st.info.get("best_epoch", 0)
        self.start_epoch = st.info.get("epoch", 0) + 1
        self.generator.manual_seed(self.cfg.train.seed + self.start_epoch)
        if self.dist.active:
            self.order_generator.manual_seed(self.cfg.train.seed + self.start_epoch)
            self.generator.manual_seed(self.cfg.train.seed + self.start_epoch + 1_000_003 * (self.dist.rank + 1))

    def _save_state(self, epoch: int) -> None:
        if self.run_dir is None or not is_main_process():
            return
        save_training_state(self.run_dir / "checkpoint.safetensors", TrainingState(
            model_state=self.model.state_dict(), best_state=self.best_state,
            optimizer_state=self.optimizer.state_dict(),
            info={"epoch": epoch, "history": self.history, "best_val": self.best_val,
                  "best_epoch": self.best_epoch, "config": self.cfg.to_dict()}))

    # ---- the loop -----------------------------------------------------------------------
    def fit(self, train: ImageSet, val: ImageSet) -> FitResult:
        """Train for the configured epochs (from ``start_epoch`` after a resume); a model with
        no parameters (``model.arch = none``) is returned untrained, with an empty history."""
        if not self.trainable:
            return FitResult(model=self.model.eval(), history=[], best_epoch=0, best_val_loss=float("nan"),
                             seconds=0.0, images_per_s=0.0, device=str(self.device),
                             extra={"last_state": self.model.state_dict(), "images_seen": 0})
        with flush_denormals():
            return self._fit(train, val)

    def _fit(self, train: ImageSet, val: ImageSet) -> FitResult:
        t = self.cfg.train
        n = len(train)
        steps = max(1, math.ceil(n / t.batch_size))
        patience_left = t.patience
        t0 = time.perf_counter()
        images_seen = 0
        stopped = False
        refresh = getattr(train, "refresh", None)  # fresh crops each epoch (aedetect.denoise.crops)
        for epoch in range(self.start_epoch, t.epochs + 1):
            if refresh is not None:
                refresh(epoch)
            self.model.train()
            perm = torch.randperm(n, generator=self.order_generator)
            e0, c0 = time.perf_counter(), time.process_time()
            # The running loss stays on the device: reading it back every step would make the
            # GPU wait for the CPU each step. It is read (and checked) every 10 steps.
            running = torch.zeros((), device=self.device)
            with progress_bar(f"epoch {epoch}/{t.epochs}", total=steps) as bar:
                for s in range(steps):
                    idx = self.dist.part(perm[s * t.batch_size:(s + 1) * t.batch_size])
                    for group in self.optimizer.param_groups:
                        group["lr"] = scheduled_lr(self.cfg, (epoch - 1) * steps + s, t.epochs * steps)
                    inp, target = self._batch(train, idx)
                    out = self._forward(inp, self.train_model)
                    loss = self.loss_fn(out, target)
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    running += loss.detach() * len(idx)
                    images_seen += len(idx)
                    bar.advance()
                    if self.on_step is not None:
                        self.on_step((epoch - 1) * steps + s + 1, float(loss.detach()))
                    if s % 10 == 0 or s == steps - 1:
                        value = float(loss.detach())  # waits for the device: the time below is real
                        if epoch == self.start_epoch and s == min(steps - 1, ETA_STEPS):
                            self._log_eta(time.perf_counter() - e0, s + 1, steps, epoch)
                        if not math.isfinite(value):
                            raise FloatingPointError(f"loss became {value} at epoch {epoch}; "
                                                     "lower the learning rate (--lr)")
                        rate = (s * t.batch_size + len(idx) * self.dist.world) / max(time.perf_counter() - e0, 1e-9)
                        bar.update(info=f"loss {value:.5f}  {rate:,.0f} img/s")
            train_seconds = time.perf_counter() - e0
            (train_sum,) = self.dist.sum(float(running))
            val_loss = self.evaluate(val)
            self._check_collapse(epoch, val, val_loss)
            improved = val_loss < self.best_val
            if improved:
                self.best_val, self.best_epoch = val_loss, epoch
                self.best_state = copy.deepcopy(self.model.state_dict())
                patience_left = t.patience
            else:
                patience_left -= 1
            row = {"epoch": epoch, "train_loss": train_sum / n, "val_loss": val_loss,
                   "best": int(improved), "seconds": round(train_seconds, 3),
                   "images_per_s": round(n / max(train_seconds, 1e-9), 1),
                   "lr": self.optimizer.param_groups[0]["lr"], "images": n,
                   "wall_seconds": round(time.perf_counter() - e0, 3),
                   # CPU time of this process (all its threads): on a shared machine the honest cost.
                   "cpu_seconds": round(time.process_time() - c0, 3)}
            psnr = self._val_psnr(val_loss)
            if psnr is not None:
                row["val_psnr"] = round(psnr, 3)
            self.history.append(row)
            log.info("epoch %d: train %.5f val %.5f%s%s", epoch, row["train_loss"], val_loss,
                     "" if psnr is None else f" ({psnr:.2f} dB on held-out crops)",
                     " (best)" if improved else "")
            self._write_epoch_files(epoch, val)
            self._save_state(epoch)
            if self.on_epoch is not None:
                self.on_epoch(epoch, row, self.model)
            if patience_left <= 0:
                log.info("early stop: no improvement for %d epochs", t.patience)
                stopped = True
                break
            if t.time_budget and time.perf_counter() - t0 >= t.time_budget and epoch < t.epochs:
                log.info("time budget: %g s spent after epoch %d of %d; keeping the best epoch (%d)",
                         t.time_budget, epoch, t.epochs, self.best_epoch)
                stopped = True
                break
        seconds = time.perf_counter() - t0
        (images_seen,) = self.dist.sum(images_seen)
        if self.start_epoch > 1:  # resumed: what the whole run cost and saw, not this process's part
            seconds = sum(r.get("wall_seconds", r["seconds"]) for r in self.history)
            images_seen = sum(r.get("images", n) for r in self.history)
        last_state = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        return FitResult(model=self.model, history=self.history, best_epoch=self.best_epoch,
                         best_val_loss=self.best_val, seconds=seconds,
                         images_per_s=images_seen / max(seconds, 1e-9), device=str(self.device),
                         run_dir=self.run_dir, stopped_early=stopped,
                         extra={"last_state": last_state, "images_seen": images_seen})

    # ---- run files ----------------------------------------------------------------------
    def _write_epoch_files(self, epoch: int, val: ImageSet) -> None:
        if self.run_dir is None or not is_main_process():
            return
        write_metrics_csv(self.run_dir / "metrics.csv", self.history)
        from aedetect.core.plots import save_loss_curve, save_recon_grid

        save_loss_curve(self.history, self.run_dir / "loss_curve.png")
        every = self.cfg.train.grid_every
        if every and (epoch % every == 0 or epoch == self.cfg.train.epochs):
            with torch.no_grad():
                self.model.eval()
                idx = torch.arange(min(8, len(val)))
                inp, target = self._batch(val, idx)
                out = self._forward(inp).float()
            inp = inp[:, :target.shape[1]]  # without a noise-level channel
            rows = [inp, out] if self.corrupt is None else [inp, out, target]
            save_recon_grid([float_to_unit(r.float().cpu(), self.cfg.data.scaling) for r in rows],
                            self.run_dir / f"recon_epoch{epoch:03d}.png")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0].keys()))
    w.writeheader()
    w.writerows(history)
    write_text_atomic(path, buf.getvalue())

