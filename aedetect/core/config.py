"""Typed configuration: model, data preprocessing and training settings.

Resolution order (nanoGPT-style typed config, validated once):
    preset (aedetect.core.presets)  ->  recipe TOML file  ->  CLI options  ->  validate()

Every invalid value is rejected with one line that names the key and the allowed values,
raised as :class:`ConfigError` so the CLI can print it without a traceback.
"""

from __future__ import annotations

import dataclasses
import json
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from aedetect.data.settings import MAX_IMAGE_SIDE, RESIZE_POLICIES, SCALINGS, DataConfig, tile_setting
from aedetect.errors import ConfigError

__all__ = ["Config", "DataConfig", "ModelConfig", "TrainConfig", "apply_overrides", "deep_merge",
           "load_recipe", "validate"]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "none")
OUTPUT_ACTIVATIONS = ("auto", "sigmoid", "tanh", "relu", "none")
DOWNSAMPLING = ("maxpool", "avgpool", "stride", "none")
UPSAMPLING = ("nearest", "bilinear", "transpose", "unpool")
NORMS = ("none", "batch", "instance", "group")
BOTTLENECKS = ("conv", "dense")
ARCHS = ("conv", "mlp", "dncnn", "ffdnet", "none")  # dncnn, ffdnet: aedetect.core.model.plainnets;
# none: no autoencoder at all (the anomaly head's ImageNet-feature scoring, aedetect.anomaly.selection.plan)
DECODER_ORDERS = ("up_conv", "conv_up")
LOSSES = ("mse", "l1", "bce", "ssim", "l1+ssim", "mse+ssim")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
DEVICES = ("auto", "cpu", "cuda", "mps")
WD_SCOPES = ("all", "encoder")
SCHEDULES = ("constant", "cosine")

_CHOICES: dict[str, tuple[str, ...]] = {
    "model.activation": ACTIVATIONS,
    "model.output_activation": OUTPUT_ACTIVATIONS,
    "model.down": DOWNSAMPLING,
    "model.up": UPSAMPLING,
    "model.norm": NORMS,
    "model.bottleneck": BOTTLENECKS,
    "model.arch": ARCHS,
    "model.decoder_order": DECODER_ORDERS,
    "data.scaling": SCALINGS,
    "data.resize": RESIZE_POLICIES,
    "train.loss": LOSSES,
    "train.optimizer": OPTIMIZERS,
    "train.device": DEVICES,
    "train.weight_decay_scope": WD_SCOPES,
    "train.schedule": SCHEDULES,
}


@dataclass
class ModelConfig:
    """Architecture of the convolutional autoencoder (see aedetect.core.model.cae).

    ``widths`` are the encoder channels per level; each level but the last-with-``down=none``
    halves the resolution. ``decoder_widths`` defaults to the mirror of the encoder.
    """

    arch: str = "conv"
    in_channels: int = 1
    widths: tuple[int, ...] = (32, 64)
    convs_per_level: int = 1
    kernel_size: int = 3
    down: str = "maxpool"
    up: str = "nearest"
    decoder_widths: tuple[int, ...] | None = None
    decoder_order: str = "up_conv"
    output_conv: bool = True
    activation: str = "relu"
    norm: str = "none"
    bottleneck: str = "conv"
    latent_channels: int | None = None
    latent_dim: int = 128
    input_size: tuple[int, int] | None = None
    output_activation: str = "auto"
    skip: bool = False
    residual: bool = False
    mlp_hidden: tuple[int, ...] = (1000, 100)
    depth: int = 17
    noise_map: bool = False

    @property
    def input_channels(self) -> int:
        """Channels the model takes: the image's, plus the noise-level map (``noise_map``)."""
        return self.in_channels + (1 if self.noise_map else 0)

    @property
    def plain(self) -> bool:
        """A plain conv stack (``dncnn``/``ffdnet``): no encoder, decoder or code."""
        return self.arch in ("dncnn", "ffdnet")

    @property
    def levels(self) -> int:
        return len(self.widths)

    @property
    def total_stride(self) -> int:
        """Factor the spatial size must divide by (input is padded to it, output cropped)."""
        if self.plain:
            return 2 if self.arch == "ffdnet" else 1
        return 1 if self.down == "none" or self.arch in ("mlp", "none") else 2 ** self.levels

    def resolved_decoder_widths(self) -> tuple[int, ...]:
        if self.decoder_widths is not None:
            return tuple(self.decoder_widths)
        # Mirror: level j upsamples from the deeper width and convolves to the shallower one,
        # so max-unpool always sees the channel count its pooling indices were taken at.
        w = list(self.widths)
        return tuple(reversed(w[:-1])) + (w[0],) if len(w) > 1 else (w[0],)


@dataclass
class TrainConfig:
    """Settings of the one training loop shared by every task head."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    schedule: str = "constant"
    lr_min: float = 1e-5
    optimizer: str = "adam"
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    weight_decay: float = 0.0
    weight_decay_scope: str = "all"
    loss: str = "mse"
    val_fraction: float = 0.1
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    grid_every: int = 1
    max_images: int | None = None
    # Seconds of training after which no new epoch starts: ``fit --time-budget``; 0 = no limit,
    # None = the head's choice (the anomaly head's aedetect.anomaly.selection.plan.AUTO_BUDGET_S, no limit
    # for the others). The best epoch so far is kept, so a budget gives a usable model.
    time_budget: float | None = None


@dataclass
class Config:
    """Everything ``aedetect fit`` needs, saved verbatim in the model file."""

    task: str = "anomaly"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    anomaly: dict[str, Any] = field(default_factory=dict)
    denoise: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        cfg = cls()
        apply_overrides(cfg, d)
        return cfg

    def validate(self) -> "Config":
        """Fill the derived fields, then check the model, data and train sections; returns self
        for chaining. The task and its head's section (``anomaly`` / ``denoise``) are checked by
        :func:`aedetect.core.heads.validate`, which calls this: the config knows no head."""
        resolve(self)
        validate(self)
        return self


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Turn a TOML/JSON/CLI value into the dataclass field's type, or fail naming the key."""
    origin = get_origin(hint)
    args = get_args(hint)
    if value is None:
        if type(None) in args or hint is Any:
            return None
        raise ConfigError(f"{key}: a value is required")
    if origin is not None and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        elem = args[0] if args else Any
        return tuple(_coerce(key, v, elem) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table/object, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if hint is str:
        return str(value)
    return value


def apply_overrides(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    """Recursively set dataclass fields from a nested dict; unknown keys are errors."""
    hints = get_type_hints(type(obj))
    names = {f.name for f in fields(obj)}
    for k, v in values.items():
        key = f"{prefix}{k}"
        if k not in names:
            raise ConfigError(f"{key}: unknown key (allowed: {', '.join(sorted(names))})")
        current = getattr(obj, k)
        if dataclasses.is_dataclass(current):
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: expected a table, got {v!r}")
            apply_overrides(current, v, prefix=f"{key}.")
        else:
            setattr(obj, k, _coerce(key, v, hints[k]))


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into ``base`` (extra wins): preset -> recipe -> CLI overrides."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a recipe TOML file into a nested dict (``preset`` key allowed at top level)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: recipe file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None


def _check_choice(key: str, value: str) -> None:
    allowed = _CHOICES[key]
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def _check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def validate(cfg: Config) -> None:
    """Check every enumerated value, range and cross-field constraint of a config."""
    m, d, t = cfg.model, cfg.data, cfg.train
    for name in ("activation", "output_activation", "down", "up", "norm", "bottleneck", "arch",
                 "decoder_order"):
        _check_choice(f"model.{name}", getattr(m, name))
    for name in ("scaling", "resize"):
        _check_choice(f"data.{name}", getattr(d, name))
    for name in ("loss", "optimizer", "device", "weight_decay_scope", "schedule"):
        _check_choice(f"train.{name}", getattr(t, name))
    if not m.widths:
        raise ConfigError("model.widths: at least one level is required")
    for w in m.widths:
        _check_positive("model.widths", w)
    _check_positive("model.in_channels", m.in_channels)
    _check_positive("model.convs_per_level", m.convs_per_level)
    if m.kernel_size % 2 != 1:
        raise ConfigError(f"model.kernel_size: must be odd so padding keeps the size, got {m.kernel_size}")
    if d.channels not in (1, 3):
        raise ConfigError(f"data.channels: {d.channels} is not one of 1, 3")
    if d.channels != m.in_channels:
        raise ConfigError(
            f"data.channels: {d.channels} differs from model.in_channels {m.in_channels}")
    if d.size is not None and (len(d.size) != 2 or min(d.size) <= 0):
        raise ConfigError(f"data.size: expected [height, width] of positive integers, got {d.size}")
    _check_positive("data.max_side", d.max_side, allow_zero=True)
    try:
        tile_setting(d.tile)
    except ValueError as e:
        raise ConfigError(f"data.tile: {e}") from None
    if d.image_size is not None:  # a tiled model (set by fit): whole images of this size, cut into tiles of data.size
        if len(d.image_size) != 2 or min(d.image_size) <= 0 or max(d.image_size) > MAX_IMAGE_SIDE:
            raise ConfigError(f"data.image_size: expected [height, width] of whole numbers in [1, {MAX_IMAGE_SIDE}], "
                              f"got {list(d.image_size)}")
        if d.size is None or len(d.size) != 2 or d.size[0] > d.image_size[0] or d.size[1] > d.image_size[1]:
            raise ConfigError(f"data.image_size: {list(d.image_size)} needs data.size (the tile) no larger, "
                              f"got {None if d.size is None else list(d.size)}")
    if m.input_size is not None and (len(m.input_size) != 2 or min(m.input_size) <= 0):
        raise ConfigError(f"model.input_size: expected [height, width], got {m.input_size}")
    needs_fixed = m.arch == "mlp" or m.bottleneck == "dense"
    if needs_fixed and m.input_size is None:
        raise ConfigError(
            "model.input_size: a dense bottleneck or mlp needs a fixed [height, width]; "
            "set data.size (or model.input_size)")
    if needs_fixed and d.size is not None and tuple(d.size) != tuple(m.input_size or ()):
        raise ConfigError(
            f"data.size: {list(d.size)} differs from the dense model's input_size {list(m.input_size or ())}")
    if m.up == "unpool" and m.down != "maxpool":
        raise ConfigError("model.up: 'unpool' needs model.down = 'maxpool' (it reuses the pooling indices)")
    if m.skip and m.decoder_order != "up_conv":
        raise ConfigError("model.skip: skip connections need model.decoder_order = 'up_conv'")
    if m.skip and m.bottleneck == "dense":
        raise ConfigError("model.skip: skip connections are not supported with a dense bottleneck")
    _check_plain(cfg)
    dec = m.resolved_decoder_widths()
    if m.arch == "conv" and m.down != "none" and len(dec) != m.levels:
        raise ConfigError(
            f"model.decoder_widths: needs one width per encoder level ({m.levels}), got {len(dec)}")
    if m.up == "unpool":
        expected = tuple(reversed(m.widths))
        got = (m.widths[-1],) + dec[:-1]
        if got != expected:
            raise ConfigError(
                "model.decoder_widths: max-unpool needs each decoder level to receive the encoder "
                f"width it pooled at ({list(expected)}); use the default mirrored widths")
    if not m.output_conv and dec[-1] != m.in_channels:
        raise ConfigError(
            f"model.decoder_widths: without an output conv the last width must equal "
            f"in_channels ({m.in_channels}), got {dec[-1]}")
    _check_positive("train.epochs", t.epochs)
    _check_positive("train.batch_size", t.batch_size)
    _check_positive("train.lr", t.lr)
    _check_positive("train.lr_min", t.lr_min, allow_zero=True)
    if t.schedule == "cosine" and t.lr_min > t.lr:
        raise ConfigError(f"train.lr_min: {t.lr_min} is above train.lr {t.lr}; the cosine schedule decays")
    _check_positive("train.weight_decay", t.weight_decay, allow_zero=True)
    _check_positive("train.patience", t.patience)
    if t.time_budget is not None and (isinstance(t.time_budget, bool) or not isinstance(t.time_budget, (int, float))
                                      or not 0 <= t.time_budget <= 1e7):
        raise ConfigError(f"train.time_budget: seconds in [0, 1e7] (0 = none), got {t.time_budget!r}")
    if t.max_images is not None:
        _check_positive("train.max_images", t.max_images)
    if not 0.0 < t.val_fraction < 1.0:
        raise ConfigError(f"train.val_fraction: must be between 0 and 1, got {t.val_fraction}")
    if t.loss == "bce" and d.scaling != "unit":
        raise ConfigError("train.loss: 'bce' needs data.scaling = 'unit' (targets in [0, 1])")


def _check_plain(cfg: Config) -> None:
    """The denoising nets (aedetect.core.model.plainnets) and the noise-level input belong to the
    denoise head: they predict noise, so as anomaly models they would learn the identity."""
    m = cfg.model
    if m.plain and cfg.task != "denoise":
        raise ConfigError(f"model.arch: {m.arch!r} is a denoiser (it predicts the noise); "
                          "--task anomaly needs 'conv' or 'mlp'")
    if m.arch == "none" and cfg.task != "anomaly":
        raise ConfigError("model.arch: 'none' (no network) is for --task anomaly only: a denoiser needs a network")
    if m.noise_map and cfg.task != "denoise":
        raise ConfigError("model.noise_map: the noise-level input is for --task denoise only")
    if m.plain:
        _check_positive("model.depth", m.depth)
        if m.depth < 2:
            raise ConfigError(f"model.depth: a plain stack needs at least 2 convolutions, got {m.depth}")


def resolve(cfg: Config) -> None:
    """Derive model fields from the data settings so the two cannot disagree.

    The model's channel count follows ``data.channels``; a fixed-size model takes
    ``data.size``; ``output_activation = 'auto'`` follows the input scaling (sigmoid for
    [0, 1], tanh for [-1, 1], none for a residual/noise-predicting output).
    """
    m, d = cfg.model, cfg.data
    m.in_channels = d.channels
    if (m.arch == "mlp" or m.bottleneck == "dense") and m.input_size is None and d.size:
        m.input_size = tuple(d.size)
    if m.output_activation == "auto":
        if m.residual or m.plain:
            m.output_activation = "none"
        else:
            m.output_activation = "sigmoid" if d.scaling == "unit" else "tanh"
