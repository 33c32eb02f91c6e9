"""Config resolution (preset -> recipe -> options) and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from aedetect.cli.options import parse_sets, parse_size
from aedetect.errors import ConfigError
from aedetect.core.presets import build_config

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(recipe: Path) -> None:
    cfg = build_config(recipe=recipe)
    assert cfg.train.epochs > 0


def test_resolution_order(tmp_path: Path) -> None:
    r = tmp_path / "r.toml"
    r.write_text('preset = "estimator"\n[train]\nepochs = 7\nlr = 0.01\n')
    cfg = build_config(recipe=r, overrides={"train": {"lr": 0.5}})
    assert cfg.model.up == "transpose"  # from the preset
    assert cfg.train.epochs == 7  # from the recipe
    assert cfg.train.lr == 0.5  # the option wins


@pytest.mark.parametrize("overrides,message", [
    ({"model": {"down": "bogus"}}, "model.down: 'bogus' is not one of maxpool, avgpool, stride, none"),
    ({"train": {"loss": "huber"}}, "train.loss: 'huber' is not one of"),
    ({"train": {"epochs": 0}}, "train.epochs: must be > 0"),
    ({"model": {"kernel_size": 4}}, "model.kernel_size"),
    ({"train": {"colour": 1}}, "train.colour: unknown key"),
    ({"train": {"epochs": "many"}}, "train.epochs: expected an integer"),
    ({"data": {"channels": 2}}, "data.channels: 2 is not one of 1, 3"),
])
def test_invalid_values_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config("small", overrides=overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_preset_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="preset: 'nope' is not one of"):
        build_config("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_config(recipe=bad)


def test_cli_value_parsers() -> None:
    assert parse_size("64") == [64, 64]
    assert parse_size("48x64") == [48, 64]
    with pytest.raises(ConfigError):
        parse_size("big")
    assert parse_sets(["model.widths=[16,32]", "train.loss=l1"]) == {
        "model": {"widths": [16, 32]}, "train": {"loss": "l1"}}
