"""Training over several processes with PyTorch's own engine (torchrun + DistributedDataParallel).

``torchrun --nproc-per-node N -m aedetect fit DATA ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address; :func:`session` then joins the process group
(gloo on the CPU, nccl on CUDA, chosen from the training device) and leaves it at the end.

How the work is split, so that N processes follow one process's run as closely as they can:
every rank draws the same shuffled order from the same seed; each step's batch of
``train.batch_size`` images (the global batch, as in one process) is dealt round robin to the
ranks (:meth:`Dist.part`), DDP averages the gradients, and the validation loss is summed over
the ranks' slices of the validation set. The number of steps and the batch the optimiser sees
are therefore those of one process; what differs is the order of floating-point sums (and, for
``model.norm = batch``, that each rank normalises with its own part of the batch). Only rank 0
writes files and calibrates; the others wait for it at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from aedetect.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank ``rank`` of ``world`` (1 = no distribution)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def part(self, idx: Tensor) -> Tensor:
        """This rank's share of one global batch (round robin). A batch with fewer images than
        ranks (the last one of an epoch) is topped up from its own start, so no rank is idle:
        DDP needs every rank to take every step."""
        if not self.active:
            return idx
        if idx.numel() < self.world:
            idx = idx.repeat(-(-self.world // max(idx.numel(), 1)))[:self.world]
        return idx[self.rank::self.world]

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (float64, on the CPU: gloo and nccl both take it)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        torch.distributed.all_reduce(t)
        return t.cpu().tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a path, an error message)."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, device=_collective_device())
        return box[0]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def _collective_device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def current() -> Dist:
    """The process group this process is in (Dist() when none)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size())
    return Dist()


def launched_world() -> int:
    """WORLD_SIZE a launcher set (1 without one)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE: {os.environ['WORLD_SIZE']!r} is not a number") from None


@contextmanager
def session(device: torch.device) -> Iterator[Dist]:
    """Join the launcher's process group for the duration (no-op in a single process)."""
    if launched_world() <= 1 or current().active:
        yield current()
        return
    if not torch.distributed.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise ConfigError(f"WORLD_SIZE is {launched_world()} but {key} is not set: launch with torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                              "use --nproc-per-node <= that")
        torch.cuda.set_device(local)
    elif device.type != "cpu":
        raise ConfigError(f"train.device: distributed training runs on cpu or cuda, not {device.type}")
    torch.distributed.init_process_group(backend)
    try:
        yield current()
    finally:
        torch.distributed.destroy_process_group()
