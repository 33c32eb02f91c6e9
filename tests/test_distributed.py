"""torchrun + DDP on the CPU (gloo): two ranks follow one process's run, rank 0 alone writes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import aedetect
from aedetect.core.training.distributed import Dist

REPO = Path(__file__).resolve().parents[1]
FIT = ["-m", "aedetect", "fit", "digits", "--recipe", str(REPO / "recipes" / "digits-quick.toml"),
       "--normal-class", "0", "--device", "cpu"]


def _run(nproc: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *FIT, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _val_losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as fh:
        return [float(r["val_loss"]) for r in csv.DictReader(fh)]


def test_dist_part_deals_each_batch_round_robin() -> None:
    idx = torch.arange(10)
    assert Dist(0, 1).part(idx).tolist() == list(range(10))
    parts = [Dist(r, 3).part(idx).tolist() for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(10)) and parts[0] == [0, 3, 6, 9]
    # A last batch smaller than the world is topped up, so every rank takes the step.
    assert [Dist(r, 3).part(torch.tensor([7])).tolist() for r in range(3)] == [[7], [7], [7]]


@pytest.mark.slow
def test_two_ranks_match_one_process_and_resume(tmp_path: Path) -> None:
    """Each run is cut after 2 epochs and resumed to 4 (a resume reseeds the shuffling, so it
    is compared with a resumed single-process run, not an uninterrupted one)."""
    one, two = tmp_path / "one", tmp_path / "two"
    for nproc, run in ((1, one), (2, two)):
        r = _run(nproc, "--epochs", "2", "--out", str(run))
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.count("model.safetensors") == 1  # under torchrun rank 0 prints, rank 1 is quiet
        r = _run(nproc, "--epochs", "4", "--resume", str(run))
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = _val_losses(one), _val_losses(two)
    assert len(a) == len(b) == 4  # the resumed runs continued from epoch 3
    # Same seed, same global batch: the same run up to the order of floating-point sums
    # (measured: equal to 5 digits on this 2-core CPU).
    assert b == pytest.approx(a, rel=2e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # one run folder each
    ma, mb = aedetect.load(one / "model.safetensors"), aedetect.load(two / "model.safetensors")
    assert mb.calibration["threshold"] == pytest.approx(ma.calibration["threshold"], rel=1e-2)


@pytest.mark.slow
def test_a_launch_the_batch_cannot_feed_is_one_clear_error(tmp_path: Path) -> None:
    r = _run(2, "--epochs", "1", "--batch-size", "1", "--out", str(tmp_path / "bad"))
    assert r.returncode != 0
    assert "train.batch_size: 1 is the batch of all ranks together" in r.stderr + r.stdout
    # Our ranks end with that line, no traceback through aedetect (torchrun's agent then prints
    # its own ChildFailedError report, which is torchrun's behaviour).
    assert not [ln for ln in r.stderr.splitlines() if ln.strip().startswith("File ") and "/aedetect/" in ln]
