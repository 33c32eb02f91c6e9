"""``aedetect fit`` as a library call: data -> split -> train -> calibrate -> model file."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from aedetect.core.modelfile.file import load_training_state, save_model
from aedetect.core.config import Config
from aedetect.data.imageset import ImageSet, source_name
from aedetect.core.training import distributed
from aedetect.errors import AedetectError, ConfigError, DataError, TrainingError
from aedetect.core.model.fastmath import flush_denormals
from aedetect.util.fsutil import check_new_dir, new_run_dir, write_text_atomic
from aedetect.util.text import printable
from aedetect.util.outdir import remove_orphans, writes_to
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.checks import check_device
from aedetect.core.heads import get_head, validate
from aedetect.core.training.train import FitResult, OutputCollapsed, Trainer, initial_model, resolve_device

log = logging.getLogger("aedetect")

T = TypeVar("T")


@dataclass
class FitOutput:
    """Paths a fit run wrote, and the training result."""

    run_dir: Path
    model_path: Path
    result: FitResult
    data: ImageSet


@dataclass
class Split:
    """The images of one fit: ``train`` (the network learns them), ``val`` (early stopping),
    ``calib`` (the head calibrates on them) and ``top_up`` (held-out normals the anomaly
    selection may add: ``val`` where ``calib`` was held out of the same images, else None)."""

    train: ImageSet
    val: ImageSet
    calib: ImageSet
    top_up: ImageSet | None


def split_images(head: Any, images: ImageSet, cfg: Config, calibration: ImageSet | None = None) -> Split:
    """The split every fit makes (``aedetect fit``, ``AnomalyDetector.fit``): validation by
    ``train.val_fraction`` and ``train.seed``; then the head's own calibration images held out
    of the training part, unless separate ``calibration`` images are given (the honest choice
    when the images are overlapping crops of one picture). The split is of whole images; a head
    that trains on pieces of them (the anomaly head's tiles, ``cut_split``) cuts them
    afterwards, so no calibration image shares a pixel with a training piece."""
    train, val = images.split(cfg.train.val_fraction, cfg.train.seed)
    if calibration is not None:
        parts = Split(train, val, calibration, None)
    else:
        train, calib = head.calibration_split(train, val, cfg)
        parts = Split(train, val, calib, val)
    cut = getattr(head, "cut_split", None)
    return parts if cut is None else cut(parts, cfg)


def resume_config(run_dir: str | Path) -> Config:
    """The config an interrupted run was started with (from its checkpoint)."""
    ckpt = Path(run_dir) / "checkpoint.safetensors"
    if not ckpt.is_file():
        raise AedetectError(f"{run_dir}: no checkpoint.safetensors to resume from")
    return validate(Config.from_dict(load_training_state(ckpt).info["config"]))


def prepare_data(images: ImageSet, cfg: Config) -> ImageSet:
    """Record the size the images were brought to, so scoring resizes the same way."""
    if cfg.train.max_images and len(images) > cfg.train.max_images:
        images = images.subset(list(range(cfg.train.max_images)))
    if len(images) < 2:
        raise DataError(f"need at least 2 usable images to train (got {len(images)})")
    if cfg.data.size is None:
        cfg.data.size = tuple(images.shape[-2:])  # type: ignore[assignment]
        validate(cfg)
    return images


def calibration_data(head: Any, calibration: str | ImageSet, cfg: Config, data_root: str | None,
                     like: ImageSet) -> ImageSet:
    """The separate calibration images of ``fit(calibration=...)``, brought to the training
    images' size and channels as scoring would bring them (``like``: the training images)."""
    images = head.training_data(calibration, cfg, data_root=data_root)
    name = source_name(calibration)
    if len(images) < 2:
        raise DataError(f"--calibration {name}: needs at least 2 usable images (got {len(images)})")
    got, want = tuple(images.images.shape[1:]), tuple(like.images.shape[1:])
    if got != want:
        raise DataError(f"--calibration {name}: images are {got} (channels, height, width), the training images {want}")
    if images.max_value != like.max_value:
        raise DataError(f"--calibration {name}: {images.max_value:g} is its images' full scale, "
                        f"the training images' is {like.max_value:g} (8-bit against 16-bit)")
    return images


def fit(data: str | ImageSet, cfg: Config, out: str | Path | None = None, *, normal_class: int | None = None,
        data_root: str | None = None, resume: str | Path | None = None,
        tensorboard: str | Path | None = None, run_name: str | None = None,
        model_name: str | None = None, init: str | Path | None = None,
        calibration: str | ImageSet | None = None) -> FitOutput:
    """Train ``cfg.task`` on ``data`` (a folder, a dataset name or an ImageSet) and write the run.

    Writes RUN_DIR/model.safetensors (best epoch), last.safetensors, checkpoint.safetensors
    (for --resume), metrics.csv, loss_curve.png, recon_epochNNN.png, summary.json and
    metrics.json (final validation/test MSE). ``tensorboard``: a root folder; events then go
    to ROOT/<model_name>/<run_name>/ (see aedetect.core.training.tensorboard). ``init``: a model file
    (or ``pretrained:NAME``) whose architecture and weights training starts from.
    ``calibration``: separate normal images (a folder or an ImageSet) the anomaly head chooses
    its scoring and sets its thresholds on, instead of a part of ``data``: the honest choice
    when ``data`` is overlapping crops of one picture (see aedetect.anomaly.calibration.overlap).
    """
    if calibration is not None and cfg.task != "anomaly":
        raise ConfigError(f"--calibration: only the anomaly task calibrates (this run's task is {cfg.task!r})")
    check_device(cfg.train.device)  # a device this machine lacks, before decoding
    # Under torchrun every rank runs this; rank 0 alone writes (aedetect.core.training.distributed).
    # A write error that names no file (a full disk) names the run folder.
    with writes_to(resume or out or "runs"), flush_denormals(), \
            distributed.session(resolve_device(cfg.train.device)) as dist:
        if resume is None:
            on_main(dist, lambda: check_new_dir(out))  # refuse a used --out before spending time on loading
        start = None if init is None else init_from(init, cfg)
        return _fit(data, cfg, out, dist, normal_class=normal_class, data_root=data_root, resume=resume,
                    tensorboard=tensorboard, run_name=run_name, model_name=model_name, init=start,
                    init_name=None if init is None else printable(str(init)), calibration=calibration)


def init_from(init: str | Path, cfg: Config) -> dict[str, Any]:
    """Fine-tuning: ``cfg.model`` becomes the ``init`` model's architecture (its weights only fit
    that), the rest of ``cfg`` stays the user's; returns the weights to start from."""
    from aedetect.core.modelfile.file import load_model

    mf = load_model(init)
    if mf.config.task != cfg.task:
        raise ConfigError(f"--init {printable(str(init))}: a {mf.config.task} model; this run trains --task {cfg.task}")
    if mf.config.data.channels != cfg.data.channels:
        raise ConfigError(f"--init {printable(str(init))}: a {mf.config.data.channels}-channel model; "
                          f"data.channels is {cfg.data.channels}")
    cfg.model = mf.config.model
    from aedetect.core.presets import PRESETS

    if cfg.task == "denoise" and cfg.denoise == PRESETS["denoise-unet"]["denoise"]:
        # No noise recipe of the user's (the preset's own table): keep the noise the model was
        # trained on (pretrained:gray: unclipped sigma 0..75), not the preset's clipped 5..50.
        cfg.denoise = dict(mf.config.denoise)
        log.info("noise recipe from %s: %s", printable(str(init)), cfg.denoise)
    validate(cfg)
    log.info("starting from the weights of %s (%s)", printable(str(init)), cfg.model.arch)
    return {k: v.detach().clone() for k, v in mf.model.state_dict().items()}


def on_main(dist: distributed.Dist, fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 only; its result, or its error as one line, reaches every rank."""
    if not dist.active:
        return fn()
    result, err = None, None
    if dist.main:
        try:
            result = fn()
        except BaseException as e:
            err = e
    result, msg = dist.broadcast((result, None if err is None else str(err)))
    if err is not None:
        raise err
    if msg is not None:
        raise AedetectError(f"rank 0: {msg}")
    return result  # type: ignore[return-value]


def fit_or_restart(trainer: Trainer, new_trainer: Callable[[float], Trainer], train_set: ImageSet,
                   val_set: ImageSet, cfg: Config) -> tuple[Trainer, FitResult]:
    """``trainer.fit``, recovering once from a collapsed output: the same seed, the output
    started at the images' mean (see ConvAutoencoder.init_output_bias, ``new_trainer(mean)``),
    so a sigmoid cannot saturate at black first. A second collapse is one line and no model.
    ``aedetect fit`` and ``AnomalyDetector.fit`` both train through here."""
    try:
        return trainer, trainer.fit(train_set, val_set)
    except OutputCollapsed as e:
        mean = float(train_set.to_float(train_set.images[:4096], cfg.data.scaling).mean())
        log.warning("%s; restarting from epoch 1 with the output started at the images' mean (%.3g)", e, mean)
        trainer = new_trainer(mean)
        try:
            return trainer, trainer.fit(train_set, val_set)
        except OutputCollapsed as again:
            raise TrainingError(f"{again} again after a restart; no model written: lower the learning rate "
                                "(--lr) or try --set model.output_activation=none") from None


def _check_launch(dist: distributed.Dist, train: ImageSet, cfg: Config) -> None:
    """A torchrun launch the data cannot feed: every rank reaches the same verdict."""
    if not dist.active:
        return
    if len(train) < dist.world:
        raise DataError(f"{len(train)} training images cannot feed {dist.world} ranks: launch fewer processes")
    if cfg.train.batch_size < dist.world:
        raise ConfigError(f"train.batch_size: {cfg.train.batch_size} is the batch of all ranks together; "
                          f"it must be at least the world size {dist.world}")


def _fit(data: str | ImageSet, cfg: Config, out: str | Path | None, dist: distributed.Dist, *,
         normal_class: int | None, data_root: str | None, resume: str | Path | None,
         tensorboard: str | Path | None, run_name: str | None, model_name: str | None,
         init: dict[str, Any] | None = None, init_name: str | None = None,
         calibration: str | ImageSet | None = None) -> FitOutput:
    head = get_head(cfg.task)
    head.ready(cfg)
    images = prepare_data(head.training_data(data, cfg, normal_class=normal_class, data_root=data_root), cfg)
    given_calib = None if calibration is None else calibration_data(head, calibration, cfg, data_root, images)
    run_dir = Path(resume) if resume is not None else on_main(dist, lambda: new_run_dir(out))
    parts = split_images(head, images, cfg, given_calib)
    train_set, val_set = parts.train, parts.val
    if resume is None and init is None:  # what is trained at all (the anomaly head: maybe no network)
        cfg = head.plan(cfg, parts.train, parts.calib, parts.top_up)
    corrupt = head.corruption(cfg)
    _check_launch(dist, train_set, cfg)
    tb = None
    if tensorboard is not None and dist.main:
        from aedetect.core.training.tensorboard import TensorBoardLogger

        tb = TensorBoardLogger.for_run(tensorboard, cfg, val_set, run_dir, run_name=run_name,
                                       model_name=model_name, corrupt=corrupt)

    def new_trainer(output_mean: float | None = None) -> Trainer:
        model = initial_model(cfg)  # the initial weights follow the seed (every rank the same)
        if init is not None:
            model.load_state_dict(init)
        if output_mean is not None:
            model.init_output_bias(output_mean)
        return Trainer(model, cfg, run_dir=run_dir, corrupt=corrupt, **(tb.callbacks() if tb else {}))

    trainer = new_trainer()
    if resume is not None:
        remove_orphans(run_dir, recursive=False)  # temporary files of the killed run
        trainer.load_state(run_dir / "checkpoint.safetensors")
        log.info("resuming %s at epoch %d", run_dir, trainer.start_epoch)
    init_val = None
    if init is not None:  # where fine-tuning starts: the --init model on this run's validation set
        init_val = trainer.evaluate(val_set)
        log.info("the --init model's validation loss: %.5f", init_val)
    trainer, result = fit_or_restart(trainer, new_trainer, train_set, val_set, cfg)
    if tb is not None:
        tb.finish(result.model, result.best_epoch)
    model_path = run_dir / "model.safetensors"
    if not dist.main:  # the model is the same on every rank: rank 0 calibrates and writes
        dist.barrier()
        return FitOutput(run_dir=run_dir, model_path=model_path, result=result, data=images)
    result.extra.update(init_val_loss=init_val, init=init_name)
    try:
        return _finish(head, result, trainer, images, parts, cfg, data, run_dir,
                       normal_class=normal_class, data_root=data_root,
                       calibration_source=None if calibration is None else source_name(calibration))
    finally:
        dist.barrier()


def _finish(head: Any, result: FitResult, trainer: Trainer, images: ImageSet, parts: Split,
            cfg: Config, data: str | ImageSet, run_dir: Path, *,
            normal_class: int | None, data_root: str | None, calibration_source: str | None = None) -> FitOutput:
    """Calibrate the head and write the model files, summary and metrics (rank 0)."""
    # The early-stopping split may top up the anomaly selection's normals only when the head
    # held the calibration images out of the same images (given ones may be crops of one picture).
    calibration = head.calibrate(result.model, parts.calib, cfg, trainer.device, train=parts.train,
                                 early_stopping=parts.top_up)
    train_set, val_set, calib_set = parts.train, parts.val, parts.calib
    source = source_name(data)
    training: dict[str, Any] = {
        **result.summary(), "data": source, "normal_class": normal_class,
        "images": len(images), "train_images": len(train_set), "val_images": len(val_set),
        "calib_images": len(calib_set) if calib_set is not val_set else 0,
        **({"calibration_data": calibration_source} if calibration_source else {}),
        "skipped_files": len(images.skipped), "images_seen": result.extra.get("images_seen"),
        # training CPU time of the whole run (all threads, every resume): the cost on a shared machine
        "cpu_seconds": round(sum(r.get("cpu_seconds", 0.0) for r in result.history), 1),
        "threads": torch.get_num_threads(),
    }
    if result.extra.get("init") is not None:  # fine-tuned: from what, and where it started
        training.update(init=result.extra["init"], init_val_loss=result.extra["init_val_loss"])
    sources = getattr(images, "sources", None)
    if sources is not None:  # crops (the denoise head): say so, and how many whole images
        training.update({"images_are": "crops", "source_images": len(sources),
                         "train_source_images": len(getattr(train_set, "sources", [])),
                         "val_source_images": len(getattr(val_set, "sources", []))})
    model_path = run_dir / "model.safetensors"
    save_model(model_path, result.model, cfg, training=training, calibration=calibration)
    last = ConvAutoencoder(cfg.model)
    last.load_state_dict(result.extra["last_state"])
    save_model(run_dir / "last.safetensors", last, cfg, training={**training, "epoch": len(result.history)},
               calibration=calibration)
    write_text_atomic(run_dir / "summary.json", json.dumps(
        {"training": training, "calibration": calibration,
         "skipped": [{"path": printable(p), "reason": printable(r)} for p, r in images.skipped]}, indent=2))
    from aedetect.core.training.runmetrics import write_run_metrics

    write_run_metrics(run_dir / "metrics.json", result.model, cfg, val_set, data, trainer.device,
                      best_val_loss=result.best_val_loss, corrupt=trainer.corrupt, normal_class=normal_class,
                      data_root=data_root, custom_data=head.builds_own_data)
    return FitOutput(run_dir=run_dir, model_path=model_path, result=result, data=images)
