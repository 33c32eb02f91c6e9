"""Parsing helpers shared by the commands: sizes, JSON arguments and ``--set key=value``."""

from __future__ import annotations

import json
from typing import Any

from aedetect.errors import ConfigError


def parse_size(text: str | None) -> list[int] | None:
    """'64' -> [64, 64]; '48x64' (height x width) -> [48, 64]."""
    if text is None:
        return None
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise ConfigError(f"--size: {text!r} is not N or HxW") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise ConfigError(f"--size: {text!r} is not N or HxW")
    return parts


def parse_json(option: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{option}: not valid JSON ({e.msg})") from None


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set model.widths=[16,32] --set train.loss=l1`` -> nested overrides.

    Values are read as JSON where they parse (numbers, lists, booleans), else as strings.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set: {item!r} is not KEY=VALUE (e.g. model.widths=[16,32])")
        key, raw = item.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def prune_none(d: dict[str, Any]) -> dict[str, Any]:
    """Drop options the user did not give, so they do not override the preset/recipe."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = prune_none(v)
            if v:
                out[k] = v
        elif v is not None:
            out[k] = v
    return out
