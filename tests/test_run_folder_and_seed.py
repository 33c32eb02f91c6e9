"""Same --seed, same weights; one run folder, one run (issue 11, items 5 and 6)."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from aedetect.cli import app
from aedetect.errors import AedetectError
from aedetect.util.fsutil import CLAIM_FILE, new_run_dir

runner = CliRunner()


def _first_epoch(run: Path) -> dict[str, str]:
    with open(run / "metrics.csv") as fh:
        return next(csv.DictReader(fh))


def test_same_seed_and_threads_give_the_same_weights_and_first_epoch_loss(digit_folder: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    args = ["fit", str(digit_folder), "--preset", "small", "--epochs", "2", "--size", "16",
            "--set", "anomaly.autoencoder=on", "--seed", "3", "--device", "cpu"]
    runs = []
    for name in ("a", "b"):
        torch.rand(17)  # whatever the global generator did before must not matter
        r = runner.invoke(app, args + ["--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
        assert torch.get_num_threads() == threads
        runs.append(tmp_path / name)
    wa, wb = (load_file(str(r / "model.safetensors")) for r in runs)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ea, eb = (_first_epoch(r) for r in runs)
    assert ea["train_loss"] == eb["train_loss"] and ea["val_loss"] == eb["val_loss"]
    # Another seed starts elsewhere (the test can tell the two apart).
    r = runner.invoke(app, args[:-4] + ["--seed", "4", "--device", "cpu", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert _first_epoch(tmp_path / "c")["train_loss"] != ea["train_loss"]


def test_two_runs_given_the_same_new_folder_cannot_both_claim_it(tmp_path: Path) -> None:
    """Two threads race for each of 20 new folders: exactly one wins every time."""
    for i in range(20):
        out = tmp_path / f"run{i}"
        barrier = threading.Barrier(2)
        won: list[Path] = []
        refused: list[str] = []

        def claim() -> None:
            barrier.wait()
            try:
                won.append(new_run_dir(out))
            except AedetectError as e:
                refused.append(str(e))

        workers = [threading.Thread(target=claim) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert len(won) == 1 and len(refused) == 1, (won, refused)
        assert str(out) in refused[0] and "\n" not in refused[0]
        assert (out / CLAIM_FILE).is_file()


def test_a_second_fit_into_a_claimed_folder_is_refused(digit_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    new_run_dir(out)  # another process claimed it a moment ago, nothing written yet
    r = runner.invoke(app, ["fit", str(digit_folder), "--preset", "small", "--epochs", "1", "--size", "16",
                            "--out", str(out)])
    assert r.exit_code == 1 and "choose a new --out" in r.output, r.output
    assert not (out / "model.safetensors").exists()
