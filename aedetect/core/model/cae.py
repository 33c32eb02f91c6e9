"""The convolutional autoencoder core: a pure ``nn.Module`` built from a ``ModelConfig``.

No training code lives here (anomalib keeps ``torch_model.py`` apart from the training logic).
One class expresses the tutorial architectures this field starts from (see aedetect.core.presets):
Keras' UpSampling CAE, a single-layer CAE, a CIFAR CAE with a dense latent vector, the
TF-estimator CAE with conv-transpose upsampling, and a stacked fully-connected autoencoder.

Any height and width: the input is padded (replicate) to a multiple of the total stride and
the output cropped back, unless a dense layer fixes the size, which ``input_size`` records.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aedetect.core.config import ModelConfig
from aedetect.errors import ConfigError


def padded(n: int, multiple: int) -> int:
    """The least multiple of ``multiple`` that is >= ``n`` (symbolic-size safe, see ``_pad``)."""
    return (n + multiple - 1) // multiple * multiple


def make_activation(name: str) -> nn.Module:
    """Map a config name to a module; 'none' is the identity."""
    return {
        "relu": lambda: nn.ReLU(inplace=True),
        "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
        "elu": lambda: nn.ELU(inplace=True),
        "gelu": nn.GELU,
        "silu": lambda: nn.SiLU(inplace=True),
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "none": nn.Identity,
    }[name]()


def make_norm(name: str, channels: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "group":
        return nn.GroupNorm(min(8, channels) if channels % min(8, channels) == 0 else 1, channels)
    return nn.Identity()


def conv_block(cin: int, cout: int, cfg: ModelConfig, stride: int = 1, act: str | None = None) -> nn.Sequential:
    """Conv (same padding) + norm + activation; the bias is dropped when a norm follows."""
    k = cfg.kernel_size
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=cfg.norm == "none")
    ]
    act = act or cfg.activation
    if act == cfg.activation:  # output convs get no norm
        layers.append(make_norm(cfg.norm, cout))
    layers.append(make_activation(act))
    return nn.Sequential(*layers)


class EncoderLevel(nn.Module):
    """``convs_per_level`` convs, then downsampling by pooling or by the last conv's stride."""

    def __init__(self, cin: int, cout: int, cfg: ModelConfig) -> None:
        super().__init__()
        n = cfg.convs_per_level
        self.convs = nn.Sequential(*[
            conv_block(cin if j == 0 else cout, cout, cfg,
                       stride=2 if cfg.down == "stride" and j == n - 1 else 1)
            for j in range(n)
        ])
        self.pool: nn.Module | None = None
        if cfg.down == "maxpool":
            self.pool = nn.MaxPool2d(2, return_indices=cfg.up == "unpool")
        elif cfg.down == "avgpool":
            self.pool = nn.AvgPool2d(2)
        self.return_indices = cfg.up == "unpool"
        # The tensor kept for a skip connection is the one at this level's input resolution.
        self.skip_channels = cin if cfg.down == "stride" else cout
        self.strided = cfg.down == "stride"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Returns (downsampled output, skip feature, max-pool indices or None)."""
        skip = x if self.strided else None
        y = self.convs(x)
        if skip is None:
            skip = y
        indices = None
        if self.pool is not None:
            if self.return_indices:
                y, indices = self.pool(y)
            else:
                y = self.pool(y)
        return y, skip, indices


class DecoderLevel(nn.Module):
    """Upsample then convs (``up_conv``), or convs then upsample (``conv_up``, Keras-style)."""

    def __init__(self, cin: int, cout: int, cfg: ModelConfig, skip_channels: int, last: bool) -> None:
        super().__init__()
        self.order = cfg.decoder_order
        self.mode = cfg.up if cfg.down != "none" else "none"
        up_channels = cin if self.order == "up_conv" else cout
        self.up: nn.Module | None = None
        if self.mode in ("nearest", "bilinear"):
            self.up = nn.Upsample(scale_factor=2, mode=self.mode,
                                  **({"align_corners": False} if self.mode == "bilinear" else {}))
        elif self.mode == "transpose":
            self.up = nn.ConvTranspose2d(up_channels, up_channels, 2, stride=2)
        elif self.mode == "unpool":
            self.up = nn.MaxUnpool2d(2)
        conv_in = cin + skip_channels
        n = cfg.convs_per_level
        # Without an output conv, the very last conv of the decoder is the output layer.
        final_act = cfg.output_activation if last and not cfg.output_conv else None
        self.convs = nn.Sequential(*[
            conv_block(conv_in if j == 0 else cout, cout, cfg,
                       act=final_act if j == n - 1 else None)
            for j in range(n)
        ])

    def _upsample(self, x: Tensor, indices: Tensor | None) -> Tensor:
        if self.up is None:
            return x
        if self.mode == "unpool":
            return self.up(x, indices)
        return self.up(x)

    def forward(self, x: Tensor, skip: Tensor | None, indices: Tensor | None) -> Tensor:
        if self.order == "up_conv":
            x = self._upsample(x, indices)
            if skip is not None:
                x = torch.cat([x, skip], dim=1)
            return self.convs(x)
        return self._upsample(self.convs(x), indices)


class ConvAutoencoder(nn.Module):
    """Encoder -> bottleneck -> decoder, built from a :class:`ModelConfig`.

    ``forward(x)`` returns the reconstruction in the same value range as the input (the
    output activation is chosen to match the input scaling). ``encode``/``decode`` expose the
    latent code for latent scores and interpolation; they are unavailable when the decoder
    needs encoder state (skip connections or max-unpool indices).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.output_activation == "auto":
            raise ConfigError("model.output_activation: resolve 'auto' with Config.validate() first")
        self.config = config
        c = config
        if c.arch == "none":  # no autoencoder: the reconstruction is the input (no parameters)
            return
        if c.arch == "mlp":
            self._build_mlp(c)
            return
        if c.plain:
            from aedetect.core.model.plainnets import PlainDenoiser

            self.plain = PlainDenoiser(c)
            return
        self.encoder = nn.ModuleList()
        prev = c.input_channels
        for w in c.widths:
            self.encoder.append(EncoderLevel(prev, w, c))
            prev = w
        self._build_bottleneck(c, prev)
        dec = c.resolved_decoder_widths()
        skips = [lvl.skip_channels for lvl in self.encoder][::-1] if c.skip else [0] * len(dec)
        self.decoder = nn.ModuleList()
        cin = prev
        for j, w in enumerate(dec):
            self.decoder.append(DecoderLevel(cin, w, c, skips[j] if j < len(skips) else 0,
                                             last=j == len(dec) - 1))
            cin = w
        if c.output_conv:
            k = c.kernel_size
            self.head = nn.Sequential(nn.Conv2d(cin, c.in_channels, k, padding=k // 2),
                                      make_activation(c.output_activation))
        else:
            self.head = nn.Identity()
        self._init_hidden(c.activation)

    @torch.no_grad()
    def _init_hidden(self, activation: str) -> None:
        """He initialisation of every hidden layer (the output conv keeps PyTorch's default).

        Why: PyTorch's default (Kaiming-uniform with a = sqrt(5)) gives a weight variance of
        1 / (3 fan_in), so with ReLU each layer passes on about a sixth of its input's variance.
        Through the ``default`` preset's 18 layers the input's trace at the output was 7e-9 of
        its spread on 64x64 grass crops: every image got the same output, only the last bias
        learnt (the mean image), and training stopped as collapsed at epoch 2 on every
        scikit-image texture. He initialisation keeps the variance layer to layer (output
        spread 0.015 at the start, the encoder's activations 0.45-0.58 at every level)."""
        relu_like = activation in ("relu", "elu", "gelu", "silu")
        out_layers = set(map(id, self.head.modules())) if isinstance(self.head, nn.Sequential) else set()
        for m in self.modules():
            if id(m) in out_layers or not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                continue
            if relu_like or activation == "leaky_relu":
                nn.init.kaiming_normal_(m.weight, a=0.2 if activation == "leaky_relu" else 0.0,
                                        nonlinearity="leaky_relu" if activation == "leaky_relu" else "relu")
            else:
                nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain("tanh" if activation == "tanh" else "linear"))
            if m.bias is not None:
                m.bias.zero_()

    # ---- construction helpers -------------------------------------------------------------
    def _padded_size(self) -> tuple[int, int]:
        s = self.config.total_stride
        h, w = self.config.input_size  # type: ignore[misc]
        return (padded(h, s), padded(w, s))

    def _build_bottleneck(self, c: ModelConfig, channels: int) -> None:
        self.to_latent: nn.Module = nn.Identity()
        self.from_latent: nn.Module = nn.Identity()
        if c.bottleneck == "dense":
            ph, pw = self._padded_size()
            s = c.total_stride
            self._feat_shape = (channels, ph // s, pw // s)
            n = channels * (ph // s) * (pw // s)
            self.to_latent = nn.Sequential(nn.Flatten(), nn.Linear(n, c.latent_dim))
            self.from_latent = nn.Sequential(nn.Linear(c.latent_dim, n), make_activation(c.activation),
                                             nn.Unflatten(1, self._feat_shape))
        elif c.latent_channels:
            # The code layer stays linear, as in the dense and mlp bottlenecks: a ReLU on a
            # narrow code (4 channels) can die as a whole and leave the decoder a constant input,
            # which stalled about one demo run in three at the mean-image loss.
            self.to_latent = nn.Sequential(nn.Conv2d(channels, c.latent_channels, 1))
            self.from_latent = nn.Sequential(nn.Conv2d(c.latent_channels, channels, 1),
                                             make_activation(c.activation))

    def _build_mlp(self, c: ModelConfig) -> None:
        h, w = c.input_size  # type: ignore[misc]
        n = c.in_channels * h * w
        dims = [n, *c.mlp_hidden]
        enc: list[nn.Module] = [nn.Flatten()]
        for i in range(len(dims) - 1):
            enc.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:  # the code layer stays linear
                enc.append(make_activation(c.activation))
        rdims = dims[::-1]
        dec: list[nn.Module] = []
        for i in range(len(rdims) - 1):
            dec.append(nn.Linear(rdims[i], rdims[i + 1]))
            dec.append(make_activation(c.activation if i < len(rdims) - 2 else c.output_activation))
        dec.append(nn.Unflatten(1, (c.in_channels, h, w)))
        self.mlp_encoder = nn.Sequential(*enc)
        self.mlp_decoder = nn.Sequential(*dec)

    # ---- parameter counts -----------------------------------------------------------------
    def encoder_modules(self) -> list[nn.Module]:
        if self.config.arch == "none":
            return []
        if self.config.arch == "mlp":
            return [self.mlp_encoder]
        if self.config.plain:
            return []
        return [self.encoder, self.to_latent]

    def decoder_modules(self) -> list[nn.Module]:
        if self.config.arch == "none":
            return []
        if self.config.arch == "mlp":
            return [self.mlp_decoder]
        if self.config.plain:  # all of a plain stack makes the output: counted as the decoder
            return [self.plain]
        return [self.from_latent, self.decoder, self.head]

    def output_layer(self) -> nn.Module:
        """The last convolution (or linear layer) of the decoder: what makes the output."""
        layers = [m for part in self.decoder_modules() for m in part.modules()
                  if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        return layers[-1]

    @torch.no_grad()
    def init_output_bias(self, mean: float) -> None:
        """Start the output at the data's mean value (in model space) instead of the output
        activation's midpoint. For images that are mostly 0 (MNIST-like strokes on black), a
        sigmoid output starting at 0.5 is pushed so hard towards 0 in the first steps that it
        saturates everywhere and training stalls at a black image; from the mean it does not."""
        act = self.config.output_activation
        if act == "sigmoid":
            m = min(max(mean, 1e-3), 1 - 1e-3)
            value = math.log(m / (1 - m))
        elif act == "tanh":
            value = math.atanh(min(max(mean, -0.999), 0.999))
        else:
            value = mean
        layer = self.output_layer()
        if layer.bias is not None:
            layer.bias.fill_(value)

    def parameter_counts(self) -> dict[str, int]:
        """Total, encoder (incl. the code layer) and decoder parameter counts."""
        enc = sum(p.numel() for m in self.encoder_modules() for p in m.parameters())
        dec = sum(p.numel() for m in self.decoder_modules() for p in m.parameters())
        return {"parameters": enc + dec, "encoder_parameters": enc, "decoder_parameters": dec}

    # ---- shapes ---------------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> None:
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.input_channels:
            what = f"{c.in_channels} + 1 noise-level map" if c.noise_map else f"{c.in_channels}"
            raise ValueError(f"expected a batch of shape (N, {what}, H, W), got {tuple(x.shape)}")
        if (c.arch == "mlp" or c.bottleneck == "dense") and tuple(x.shape[-2:]) != tuple(c.input_size or ()):
            raise ValueError(
                f"this model has a dense layer and takes only {c.input_size[0]}x{c.input_size[1]} "  # type: ignore[index]
                f"images, got {x.shape[-2]}x{x.shape[-1]}; resize the inputs (data.size)")

    def _pad(self, x: Tensor) -> Tensor:
        s = self.config.total_stride
        h, w = x.shape[-2:]
        # While exporting (ONNX), H and W are symbols: the pad is always in the graph (of
        # size 0 for a multiple of the stride), as a branch on them would fix one size; and
        # the padded size is written as a multiple of the stride, which the exporter can
        # prove divisible (from ``(-h) % s`` it assumed the traced sizes' remainder instead).
        ph, pw = padded(h, s) - h, padded(w, s) - w
        if torch.compiler.is_exporting() or ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    # ---- forward --------------------------------------------------------------------------
    def _encode_full(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor | None]]:
        skips: list[Tensor] = []
        indices: list[Tensor | None] = []
        for level in self.encoder:
            x, s, i = level(x)
            skips.append(s)
            indices.append(i)
        return self.to_latent(x), skips, indices

    def _decode_full(self, z: Tensor, skips: list[Tensor] | None, indices: list[Tensor | None] | None) -> Tensor:
        x = self.from_latent(z)
        for j, level in enumerate(self.decoder):
            k = len(self.encoder) - 1 - j
            skip = skips[k] if (self.config.skip and skips is not None and k >= 0) else None
            idx = indices[k] if (indices is not None and k >= 0) else None
            x = level(x, skip, idx)
        return self.head(x)

    def encode(self, x: Tensor) -> Tensor:
        """Latent code of a batch (padded to the total stride first)."""
        self._check_input(x)
        if self.config.arch == "mlp":
            return self.mlp_encoder(x)
        if self.config.plain or self.config.arch == "none":
            raise ConfigError(f"model.arch {self.config.arch!r} has no latent code")
        z, _, _ = self._encode_full(self._pad(x))
        return z

    def decode(self, z: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Image from a latent code; ``size`` crops the padded output back to (H, W)."""
        c = self.config
        if c.arch == "mlp":
            return self.mlp_decoder(z)
        if c.arch == "none":
            raise ConfigError("model.arch 'none' has no decoder")
        if c.skip or c.plain or c.up == "unpool":
            raise ConfigError(
                "decode() from a code alone is impossible with skip connections or max-unpool: "
                "the decoder needs the encoder's features")
        y = self._decode_full(z, None, None)
        if size is not None:
            y = y[..., : size[0], : size[1]]
        return y

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_parts(x)[0]

    def forward_parts(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """(reconstruction, latent code, each encoder level's feature map) from one pass.

        Why: anomaly scoring needs the code (latent kNN) or a level's features (feature map)
        besides the reconstruction; taking them from this pass saves a second encoder pass.
        The feature maps are at each level's input resolution of the padded input (none for
        the ``mlp`` arch).
        """
        self._check_input(x)
        c = self.config
        if c.arch == "none":  # the anomaly head scores with ImageNet features alone
            return x, x.new_zeros((x.shape[0], 0)), []
        if c.plain:  # predicts and subtracts the noise itself
            return self.plain(x), x.new_zeros((x.shape[0], 0)), []
        if c.arch == "mlp":
            z = self.mlp_encoder(x)
            y, skips = self.mlp_decoder(z), []
        else:
            h, w = x.shape[-2:]
            z, skips, indices = self._encode_full(self._pad(x))
            y = self._decode_full(z, skips, indices)[..., :h, :w]
        if c.residual:
            # The network predicts the noise; the clean estimate is the input minus it (the
            # image channels of it: a noise-level map is not part of the image).
            y = x[:, :c.in_channels] - y
        return y, z, skips
