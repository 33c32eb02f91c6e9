"""Sharded scoring and denoising: N shards plus the merge equal one process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import save_png

from aedetect.cli import app
from aedetect.data.shard import Shard, resolve_shard
from aedetect.errors import ConfigError

runner = CliRunner()


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_shards_partition_and_balance() -> None:
    items = list(range(10))
    parts = [Shard(k, 3).take(items) for k in range(3)]
    assert sorted(sum(parts, [])) == items and [len(p) for p in parts] == [4, 3, 3]
    assert Shard.parse(" 2/3 ") == Shard(2, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            Shard.parse(bad)


def test_shard_from_launcher_environment() -> None:
    assert Shard.from_env({"RANK": "1", "WORLD_SIZE": "4"}) == Shard(1, 4)
    assert Shard.from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert Shard.from_env({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3",
                           "SLURM_ARRAY_TASK_MIN": "1"}) == Shard(2, 3)
    assert Shard.from_env({}) is None
    assert resolve_shard("none") is None and resolve_shard("0/2") == Shard(0, 2)


@pytest.fixture()
def mvtec_digits(tmp_path: Path, digits) -> Path:  # type: ignore[no-untyped-def]
    """An MVTec-AD-like folder of real digits: zeros good, other digits a 'defect' kind with
    masks (the bright strokes), one unreadable file in each kind."""
    root = tmp_path / "digits_ad"
    labels = digits.labels.numpy()
    zeros, others = np.flatnonzero(labels == 0)[120:140], np.flatnonzero(labels != 0)[:17]
    for i in zeros:
        save_png(root / "test" / "good" / f"z{i:04d}.png", digits.images[i, 0].numpy())
    for i in others:
        img = digits.images[i, 0].numpy()
        save_png(root / "test" / "other" / f"d{i:04d}.png", img)
        save_png(root / "ground_truth" / "other" / f"d{i:04d}_mask.png", np.where(img > 128, 255, 0).astype(np.uint8))
    save_png(root / "train" / "good" / "z.png", digits.images[int(zeros[0]), 0].numpy())  # marks the layout
    (root / "test" / "good" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    (root / "test" / "other" / "d_broken.png").write_bytes(b"not an image")
    return root


def test_three_shards_merged_equal_one_process(model_file: Path, mvtec_digits: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    r = runner.invoke(app, ["score", str(model_file), str(mvtec_digits), "--out", str(one), "--all-heatmaps"])
    assert r.exit_code == 0, r.output
    shards = []
    for k in range(3):
        out = tmp_path / f"shard{k}"
        r = runner.invoke(app, ["score", str(model_file), str(mvtec_digits), "--out", str(out), "--all-heatmaps",
                                "--shard", f"{k}/3"])
        assert r.exit_code == 0, r.output
        shards.append(out)
    sizes = [len(_rows(s / "scores.csv")) - 1 for s in shards]
    assert sum(sizes) == len(_rows(one / "scores.csv")) - 1 and max(sizes) - min(sizes) <= 1
    merged = tmp_path / "merged"
    r = runner.invoke(app, ["merge", *map(str, shards[::-1]), "--out", str(merged)])  # any order
    assert r.exit_code == 0, r.output

    a, b = _rows(one / "scores.csv"), _rows(merged / "scores.csv")
    assert len(a) == len(b) == 40 and a[0] == b[0]
    for ra, rb in zip(a[1:], b[1:]):
        assert [ra[0], *ra[3:]] == [rb[0], *rb[3:]]  # path, flag, label, kind, error: identical
        if ra[1]:
            # Scores agree to float32 rounding: the shards' batches hold other images, and a
            # forward pass may pick other kernels for another batch shape.
            assert float(rb[1]) == pytest.approx(float(ra[1]), rel=1e-5, abs=1e-8)
    assert any(r[6] for r in b[1:]) and not b[-1][1]  # the unreadable files come last, as in one run

    ma, mb = json.loads((one / "metrics.json").read_text()), json.loads((merged / "metrics.json").read_text())
    assert set(ma) == set(mb) and {"image_auroc", "pixel_auroc", "aupro"} <= set(ma)
    for k, v in ma.items():
        if isinstance(v, float):
            assert mb[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
        else:
            assert mb[k] == v, k
    names = sorted(p.relative_to(one / "heatmaps") for p in (one / "heatmaps").rglob("*.png"))
    assert names and names == sorted(p.relative_to(merged / "heatmaps") for p in (merged / "heatmaps").rglob("*.png"))
    assert (merged / "roc.png").is_file()


def test_merge_refuses_an_incomplete_or_mixed_set(model_file: Path, mvtec_digits: Path, tmp_path: Path) -> None:
    for k in (0, 1):
        r = runner.invoke(app, ["score", str(model_file), str(mvtec_digits), "--out", str(tmp_path / f"s{k}"),
                                "--shard", f"{k}/3", "--no-heatmaps"])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and "2/3" in r.output and "missing" in r.output
    assert not (tmp_path / "m").exists()
    r = runner.invoke(app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s0"), str(tmp_path / "s1"),
                            "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and "also" in r.output


def test_a_shard_without_files_is_one_clear_error(model_file: Path, tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "two"
    for i in range(2):
        save_png(folder / f"x{i}.png", digits.images[i, 0].numpy())
    r = runner.invoke(app, ["score", str(model_file), str(folder), "--out", str(tmp_path / "o"), "--shard", "2/3"])
    assert r.exit_code == 1 and "no images for this shard" in r.output


def test_denoise_shards_split_one_tree(tmp_path: Path) -> None:
    from test_denoise import untrained_model

    model = untrained_model(tmp_path / "m.safetensors")
    src = tmp_path / "noisy"
    rng = np.random.default_rng(0)
    names = [f"sub{i % 2}/img{i}.png" for i in range(7)]
    for n in names:
        save_png(src / n, rng.integers(0, 256, (20, 24), dtype=np.uint8))
    out = tmp_path / "clean"
    done: list[set[str]] = []
    for k in range(2):
        before = {str(p.relative_to(out)) for p in out.rglob("*.png")} if out.exists() else set()
        r = runner.invoke(app, ["denoise", str(model), str(src), "--out", str(out), "--shard", f"{k}/2"])
        assert r.exit_code == 0, r.output
        done.append({str(p.relative_to(out)) for p in out.rglob("*.png")} - before)
    assert done[0] and done[1] and not done[0] & done[1]
    assert done[0] | done[1] == set(names)
