"""The task-head registry: the core finds heads through entry points or register_head."""

from __future__ import annotations

from typing import Any

import pytest

from aedetect.core import heads
from aedetect.core.config import Config
from aedetect.errors import ConfigError


def test_builtin_heads_come_from_the_installed_entry_points() -> None:
    assert {"anomaly", "denoise"} <= set(heads.head_names())
    from aedetect.anomaly.head import AnomalyHead
    from aedetect.denoise.head import DenoiseHead

    assert type(heads.get_head("anomaly")) is AnomalyHead
    assert type(heads.get_head("denoise")) is DenoiseHead


def test_unknown_task_is_one_line_naming_the_heads() -> None:
    with pytest.raises(ConfigError, match=r"^task: 'segment' is not one of anomaly, denoise$"):
        heads.validate(Config(task="segment"))


def test_a_registered_head_validates_its_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class ToyHead(heads.BaseHead):
        name = "toy"

        def validate(self, cfg: Config) -> None:
            seen.append(cfg.task)
            if cfg.anomaly.get("bad"):
                raise ConfigError("anomaly.bad: refused by the toy head")

    monkeypatch.setitem(heads._registered, "toy", ToyHead)
    heads.validate(Config(task="toy"))
    assert seen == ["toy"] and "toy" in heads.head_names()
    with pytest.raises(ConfigError, match="refused by the toy head"):
        heads.validate(Config(task="toy", anomaly={"bad": True}))


def test_register_head_puts_a_head_in_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heads, "_registered", {})
    heads.register_head("plain", heads.BaseHead)
    assert type(heads.get_head("plain")) is heads.BaseHead
