"""Every preset and a grid of configs: shapes kept, no NaN, exact reference parameter counts."""

from __future__ import annotations

import itertools

import pytest
import torch

from aedetect.core.config import Config
from aedetect.errors import ConfigError
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.presets import PRESETS, build_config


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_runs_forward(name: str) -> None:
    cfg = build_config(name)
    model = ConvAutoencoder(cfg.model).eval()
    sizes = [tuple(cfg.model.input_size)] if cfg.model.input_size else [(28, 28), (33, 47), (64, 64)]
    if name == "keras-dogs":
        sizes = [(224, 224), (37, 50)]
    for size in sizes:
        x = torch.rand(2, cfg.data.channels, *size)
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape, (name, size)
        assert torch.isfinite(y).all()


def test_keras_dogs_matches_the_keras_summary() -> None:
    counts = ConvAutoencoder(build_config("keras-dogs").model).parameter_counts()
    assert counts["encoder_parameters"] == 93_248
    assert counts["decoder_parameters"] == 166_467
    assert counts["parameters"] == 93_248 + 166_467


def test_mlp_784_1000_100_counts() -> None:
    counts = ConvAutoencoder(build_config("mlp").model).parameter_counts()
    # 784*1000+1000 + 1000*100+100 (encoder), mirrored decoder
    assert counts["encoder_parameters"] == 785_000 + 100_100
    assert counts["decoder_parameters"] == 101_000 + 784_784


GRID = list(itertools.product(
    ["maxpool", "avgpool", "stride"],
    ["nearest", "bilinear", "transpose", "unpool"],
    ["none", "batch", "group"],
    [False, True],
))


@pytest.mark.parametrize("down,up,norm,skip", GRID)
def test_config_grid_keeps_shape(down: str, up: str, norm: str, skip: bool) -> None:
    if up == "unpool" and down != "maxpool":
        with pytest.raises(ConfigError, match="model.up"):
            build_config("small", overrides={"model": {"down": down, "up": up}})
        return
    cfg = build_config("small", overrides={"model": {"down": down, "up": up, "norm": norm, "skip": skip,
                                                     "widths": [8, 16], "convs_per_level": 2}})
    model = ConvAutoencoder(cfg.model)
    for size in [(16, 16), (29, 30), (7, 5)]:
        x = torch.rand(3, 1, *size)
        with torch.no_grad():
            y = model(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()
        assert 0 <= float(y.min()) and float(y.max()) <= 1  # sigmoid for [0, 1] inputs


def test_rgb_and_symmetric_scaling_use_tanh() -> None:
    cfg = build_config("small", overrides={"data": {"channels": 3, "scaling": "symmetric"}})
    assert cfg.model.output_activation == "tanh" and cfg.model.in_channels == 3
    with torch.no_grad():
        y = ConvAutoencoder(cfg.model)(torch.rand(2, 3, 20, 20) * 2 - 1)
    assert y.shape == (2, 3, 20, 20) and float(y.abs().max()) <= 1


def test_residual_output_is_input_minus_prediction() -> None:
    cfg = build_config("small", overrides={"model": {"residual": True, "skip": True}})
    model = ConvAutoencoder(cfg.model)
    x = torch.rand(2, 1, 16, 16)
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    assert torch.allclose(model(x), x)  # zero noise prediction -> identity


def test_dense_bottleneck_records_and_checks_its_size() -> None:
    cfg = build_config("cifar-linear")
    assert tuple(cfg.model.input_size) == (32, 32)
    model = ConvAutoencoder(cfg.model)
    with pytest.raises(ValueError, match="only 32x32"):
        model(torch.rand(1, 3, 28, 28))
    big = build_config("cifar-linear", overrides={"model": {"latent_dim": 1000}})
    assert ConvAutoencoder(big.model).to_latent[1].out_features == 1000


def test_encode_decode_round_trip_equals_forward() -> None:
    cfg = build_config("estimator")
    model = ConvAutoencoder(cfg.model).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model.decode(model.encode(x), size=(28, 28)), model(x), atol=1e-6)


def test_unresolved_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="auto"):
        ConvAutoencoder(Config().model)


def test_conv_code_layer_is_linear() -> None:
    """A ReLU on a narrow 1x1-conv code can die as a whole (constant decoder input); the code
    layer stays linear like the dense one, so codes take negative values too. Seeded: with
    random weights all four code channels can share a sign (about 1 draw in 8)."""
    torch.manual_seed(0)
    cfg = build_config("small", overrides={"model": {"latent_channels": 4}})
    model = ConvAutoencoder(cfg.model).eval()
    with torch.no_grad():
        z = model.encode(torch.rand(8, 1, 32, 32))
    assert z.shape[1] == 4 and float(z.min()) < 0 < float(z.max())
