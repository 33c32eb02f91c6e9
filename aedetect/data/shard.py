"""One job's share of a dataset: ``--shard K/N``, or the launcher's environment.

N jobs on N machines split one folder with no coordination: each lists the files the same
way (the order ``aedetect score`` and ``aedetect denoise`` already use), and job K takes
positions K, K + N, K + 2N, ... Round robin keeps the shares within one file of each other
and does not depend on file sizes or on timing, so a re-run of shard K takes the same files.
Where no ``--shard`` is given, torchrun's ``RANK``/``WORLD_SIZE`` or a SLURM array's
``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT`` (from ``SLURM_ARRAY_TASK_MIN``) are used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aedetect.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Job ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"--shard: {self.index}/{self.count} is not K/N with 0 <= K < N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def positions(self, n: int) -> range:
        """The positions of this shard among ``n`` items."""
        return range(self.index, n, self.count)

    def take(self, items: Sequence[T]) -> list[T]:
        """This shard's items, in their order."""
        return [items[i] for i in self.positions(len(items))]

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"K/N"`` -> Shard(K, N)."""
        k, sep, n = text.strip().partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(k), int(n))
        except ValueError:
            raise ConfigError(f"--shard: {text!r} is not K/N (for example 0/4: the first of four jobs)") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Shard | None":
        """The shard a launcher gives (torchrun, then a SLURM array), or None."""
        env = os.environ if env is None else env
        try:
            if "WORLD_SIZE" in env and "RANK" in env:
                return cls(int(env["RANK"]), int(env["WORLD_SIZE"])) if int(env["WORLD_SIZE"]) > 1 else None
            if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
                first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
                return cls(int(env["SLURM_ARRAY_TASK_ID"]) - first, int(env["SLURM_ARRAY_TASK_COUNT"]))
        except ValueError as e:
            raise ConfigError(f"shard from the environment: {e}") from None
        return None


def resolve_shard(text: str | None) -> Shard | None:
    """``--shard`` if given, else the launcher's environment; ``"none"`` forces one job."""
    if text is not None:
        return None if text.strip().lower() == "none" else Shard.parse(text)
    return Shard.from_env()
