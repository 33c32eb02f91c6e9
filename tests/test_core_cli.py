"""CLI through typer's runner: what the library received, files written, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aedetect.cli import app
from aedetect.core.modelfile.file import load_model

runner = CliRunner()


def test_fit_on_a_folder_with_one_corrupt_file(digit_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", str(digit_folder), "--preset", "small", "--out", str(out),
                            "--epochs", "2", "--size", "16", "--seed", "3", "--set", "model.widths=[8,16]"])
    assert r.exit_code == 0, r.output
    assert "broken.png" in r.output  # the warning names the corrupt file
    assert "1 unreadable skipped" in r.output
    mf = load_model(out / "model.safetensors")
    assert mf.config.model.widths == (8, 16) and mf.config.train.seed == 3
    assert mf.metadata["training"]["images"] == 120
    assert mf.metadata["training"]["skipped_files"] == 1


def test_fit_refuses_to_overwrite_a_run(digit_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.safetensors").write_text("precious")
    r = runner.invoke(app, ["fit", str(digit_folder), "--out", str(out), "--epochs", "1"])
    assert r.exit_code == 1
    assert "not empty" in r.output
    assert (out / "model.safetensors").read_text() == "precious"


def test_fit_without_out_makes_a_new_run_folder(digit_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", str(digit_folder), "--preset", "small", "--epochs", "1", "--size", "16"]
    a = runner.invoke(app, args)
    b = runner.invoke(app, args)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all((r / "model.safetensors").is_file() for r in runs)


@pytest.mark.parametrize("args,message", [
    (["--set", "model.down=bogus"], "model.down: 'bogus' is not one of"),
    (["--optimizer", "lbfgs"], "train.optimizer: 'lbfgs' is not one of"),
    (["--optimizer-args", "{lr: 1}"], "--optimizer-args: not valid JSON"),
    (["--device", "tpu"], "train.device: 'tpu' is not one of"),
])
def test_bad_options_are_one_red_line(digit_folder: Path, args: list[str], message: str) -> None:
    r = runner.invoke(app, ["fit", str(digit_folder), "--epochs", "1", *args])
    assert r.exit_code == 64  # a usage error (was 1 before usage errors got their own code)
    assert message in r.output
    assert "Traceback" not in r.output


def test_no_usable_images_exits_1(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"nope")
    r = runner.invoke(app, ["fit", str(tmp_path), "--epochs", "1"])
    assert r.exit_code == 1 and "could be read" in r.output


def test_optimizer_args_reach_the_optimizer(digit_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", str(digit_folder), "--preset", "small", "--out", str(out), "--epochs", "1",
                            "--size", "16", "--optimizer", "adamw", "--optimizer-args", '{"lr": 0.0005, "betas": [0.8, 0.9]}'])
    assert r.exit_code == 0, r.output
    cfg = load_model(out / "model.safetensors").config.train
    assert cfg.optimizer == "adamw" and cfg.optimizer_args == {"lr": 0.0005, "betas": [0.8, 0.9]}


def test_info_json_for_a_preset_and_a_file(digit_folder: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["info", "keras-dogs", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["parameters"], d["encoder_parameters"], d["decoder_parameters"]) == (259_715, 93_248, 166_467)
    out = tmp_path / "run"
    assert runner.invoke(app, ["fit", str(digit_folder), "--preset", "small", "--out", str(out),
                               "--epochs", "1", "--size", "16", "--set", "anomaly.autoencoder=on"]).exit_code == 0
    d = json.loads(runner.invoke(app, ["info", str(out / "model.safetensors"), "--json"]).output)
    assert d["kind"] == "model" and d["training"]["epochs_run"] == 1 and d["config"]["data"]["size"] == [16, 16]
    table = runner.invoke(app, ["info", str(out / "model.safetensors")])
    assert table.exit_code == 0 and "encoder_parameters" in table.output
    bad = runner.invoke(app, ["info", str(tmp_path / "nothing.safetensors")])
    assert bad.exit_code == 64 and "neither a model file nor a preset" in bad.output


def test_mnist_by_name_with_normal_class(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", "mnist", "--normal-class", "1", "--data-root", str(shared_data),
                            "--preset", "small", "--epochs", "1", "--max-images", "512", "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = load_model(out / "model.safetensors").metadata["training"]
    assert t["normal_class"] == 1 and t["images"] == 512


def test_bad_head_settings_fail_before_a_run_folder_exists(digit_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", str(digit_folder), "--out", str(out), "--set", "anomaly.score=median"])
    assert r.exit_code == 64 and "anomaly.score" in r.output
    assert not out.exists()


def test_cli_reference_lists_every_command() -> None:
    """docs/cli.md is generated from the app (typer ... utils docs): it must not go stale."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for cmd in app.registered_commands:
        name = cmd.name or cmd.callback.__name__  # type: ignore[union-attr]
        assert f"## `aedetect {name}`" in doc, name
