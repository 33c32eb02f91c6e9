"""Issue 27's low-severity cases: each a one-line refusal with the documented exit code, or
the behaviour a user expects, never a traceback."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import untrained_model

from aedetect.cli import app

runner = CliRunner()


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(src / f"g{i}.png")
    return src


def test_export_never_writes_over_its_own_model(tmp_path: Path) -> None:
    model = untrained_model(tmp_path / "v")
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    r = runner.invoke(app, ["export", str(model), "--out", str(model), "--overwrite"])
    assert r.exit_code == 1 and "inside the input" in r.output, r.output
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("args,words", [
    (["--opset", "1"], "--opset"), (["--opset", "999"], "--opset"), (["--margin", "100000000"], "--margin"),
    (["--format", "tflite"], "--format"),
])
def test_export_options_are_usage_errors(tmp_path: Path, args: list[str], words: str) -> None:
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["export", str(model), "--out", str(tmp_path / "m.onnx"), *args])
    assert r.exit_code == 64 and words in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "m.onnx").exists()


def test_denoise_overlap_beyond_a_tile_is_a_usage_error(tmp_path: Path, folder: Path) -> None:
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(folder), "--out", str(tmp_path / "o"), "--overlap", "20000"])
    assert r.exit_code == 64 and "--overlap" in r.output and not (tmp_path / "o").exists(), r.output
    r = runner.invoke(app, ["denoise", str(model), str(folder), "--out", str(tmp_path / "o"), "--overlap", "64",
                            "--max-tile-pixels", "1"])  # a tiny tile keeps the default overlap's allowance
    assert r.exit_code == 64 and "more than 32" in r.output, r.output


def _counting_writer(monkeypatch: pytest.MonkeyPatch, fail: Callable[[str], None]) -> list[str]:
    import aedetect.data.io as imageio

    calls: list[str] = []
    real = imageio._write

    def writer(tmp: str, *a, **k) -> None:  # type: ignore[no-untyped-def]
        calls.append(tmp)
        real(tmp, *a, **k)
        fail(tmp)

    monkeypatch.setattr(imageio, "_write", writer)
    return calls


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_denoise_stops_at_the_first_write_a_full_or_read_only_disk_fails(
        tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def full(tmp: str) -> None:
        raise OSError(code, os.strerror(code))

    calls = _counting_writer(monkeypatch, full)
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(folder), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and len(calls) == 1, (len(calls), r.output)
    lines = [line for line in r.output.splitlines() if line.strip() and not line.startswith("denoising")]
    assert len(lines) == 1 and "stopped at the first failed write" in lines[0] and os.strerror(code) in lines[0], lines
    assert not any(p.is_file() for p in (tmp_path / "o").rglob("*"))


def test_two_denoise_runs_into_one_out_report_no_false_failures(tmp_path: Path, folder: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The other run writes each output while this one is denoising it: skipped, not failed."""
    out = tmp_path / "o"

    def other_run_wins(tmp: str) -> None:
        final = Path(tmp).parent / Path(tmp).name.split(".aedetect-tmp.")[0].lstrip(".")
        final = final.with_name(final.name + ".png")
        final.write_bytes(Path(tmp).read_bytes())

    _counting_writer(monkeypatch, other_run_wins)
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(folder), "--out", str(out)])
    assert r.exit_code == 0 and "failed 0" in r.output and "skipped 3" in r.output, r.output


def test_sigterm_mid_score_leaves_no_temporary_file(tmp_path: Path, model_file: Path, digits_uint8,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    import aedetect.anomaly.jobs.score as score_mod

    images, _ = digits_uint8
    data = tmp_path / "d"
    data.mkdir()
    for i in range(6):
        Image.fromarray(images[i]).resize((16, 16), Image.NEAREST).save(data / f"d{i}.png")
    real = score_mod.write_heatmap

    def killed(*a, **k):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler stopping the job mid-run
        return real(*a, **k)

    monkeypatch.setattr(score_mod, "write_heatmap", killed)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    r = runner.invoke(app, ["score", str(model_file), str(data), "--out", str(out), "--all-heatmaps"])
    assert r.exit_code == 143 and "terminated" in r.output, r.output
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    assert [p.name for p in out.rglob("*") if ".tmp" in p.name] == [] and not (out / "scores.csv").exists()


def test_a_crashed_runs_claim_does_not_block_the_rerun(tmp_path: Path, model_file: Path, digits_uint8) -> None:  # type: ignore[no-untyped-def]
    import signal
    import subprocess

    from aedetect.util.fsutil import CLAIM_FILE
    from aedetect.util.names import temp_name

    images, _ = digits_uint8
    data = tmp_path / "d"
    data.mkdir()
    Image.fromarray(images[0]).resize((16, 16), Image.NEAREST).save(data / "a.png")
    p = subprocess.Popen(["sleep", "60"])
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / CLAIM_FILE).write_text(f"pid {p.pid} at 2026-01-01T00:00:00+0000\n")  # the crashed run's
    (out / temp_name("scores.csv", p.pid)).write_text("path,score\n")
    r = runner.invoke(app, ["score", str(model_file), str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "scores.csv").is_file() and str(os.getpid()) in (out / CLAIM_FILE).read_text()
    live = tmp_path / "live"
    live.mkdir()
    (live / CLAIM_FILE).write_text(f"pid {os.getpid()} at now\n")  # a run still going: refused
    r = runner.invoke(app, ["score", str(model_file), str(data), "--out", str(live)])
    assert r.exit_code == 1 and "not empty" in r.output, r.output


def test_inspect_one_image_skips_the_map_and_bad_counts_are_usage_errors(tmp_path: Path) -> None:
    model = untrained_model(tmp_path / "m.safetensors")
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(np.full((16, 16), 70, np.uint8)).save(one / "a.png")
    r = runner.invoke(app, ["inspect", str(model), str(one), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "latent_map" in r.output and "needs at least 3" in r.output
    assert (tmp_path / "o" / "index.html").is_file() and not (tmp_path / "o" / "latent_map.png").exists()
    for args in (["--images", "0"], ["--max-points", "1"], ["--steps", "1"]):
        r = runner.invoke(app, ["inspect", str(model), str(one), "--out", str(tmp_path / "p"), *args])
        assert r.exit_code == 64 and args[0] in r.output and not (tmp_path / "p").exists(), r.output


def test_resume_with_a_checkpoint_lacking_its_config_is_one_line(tmp_path: Path) -> None:
    import json as _json

    import torch
    from safetensors.torch import save_file

    run = tmp_path / "run"
    run.mkdir()
    save_file({"model.w": torch.zeros(2)}, str(run / "checkpoint.safetensors"), metadata={
        "aedetect-training-state": _json.dumps({"param_groups": [], "opt_scalars": {}, "info": {"epoch": 1}})})
    r = runner.invoke(app, ["fit", "digits", "--resume", str(run)])
    assert r.exit_code == 1 and "without the run's config" in r.output and "Traceback" not in r.output, r.output


def test_resume_of_a_finished_run_on_other_data_is_refused(tmp_path: Path) -> None:
    import json as _json

    from aedetect.core.checks import check_resume_data
    from aedetect.errors import ConfigError

    run, a, b = tmp_path / "run", tmp_path / "a", tmp_path / "b"
    for d in (run, a, b):
        d.mkdir()
    (run / "summary.json").write_text(_json.dumps({"data": str(a)}))
    check_resume_data(run, str(a))
    check_resume_data(run, str(b / ".." / "a"))  # the same folder spelled another way
    with pytest.raises(ConfigError, match="trained on"):
        check_resume_data(run, str(b))
    (run / "summary.json").write_text(_json.dumps({"data": "digits"}))
    with pytest.raises(ConfigError, match="trained on digits, not mnist"):
        check_resume_data(run, "mnist")
    r = runner.invoke(app, ["fit", "mnist", "--resume", str(run)])
    assert r.exit_code == 64 and "trained on digits" in r.output, r.output


def test_a_file_name_cannot_write_a_log_line_of_its_own(tmp_path: Path, folder: Path) -> None:
    (folder / "x\nwarning: all files verified.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (folder / "y\x1b[2Kz.png").write_bytes(b"not an image")
    model = untrained_model(tmp_path / "m.safetensors")
    r = runner.invoke(app, ["denoise", str(model), str(folder), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert not any(line.startswith("warning: all files") for line in r.output.splitlines()), r.output
    assert "\x1b[2K" not in r.output and "x\\x0awarning: all files verified.png" in r.output


def test_json_outputs_are_strict() -> None:
    import json as _json

    from aedetect.util.text import strict_json

    text = strict_json({"auroc": float("nan"), "rows": [1.0, float("inf")], "ok": 0.5})
    assert _json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == {
        "auroc": None, "rows": [1.0, None], "ok": 0.5}


def test_info_json_of_a_model_with_a_nan_metric_is_strict_json(tmp_path: Path) -> None:
    import json as _json

    from aedetect.core.modelfile.header import RECORD_KEY, record_digest

    from conftest import rewrite_model_meta

    model = untrained_model(tmp_path / "m.safetensors")

    def edit(m):  # type: ignore[no-untyped-def]
        m["training"] = {"best_val_loss": float("nan")}
        m[RECORD_KEY] = record_digest(m)
    rewrite_model_meta(model, edit)
    r = runner.invoke(app, ["info", str(model), "--json"])
    assert r.exit_code == 0, r.output
    d = _json.loads(r.output, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert d["training"]["best_val_loss"] is None


@pytest.fixture()
def two_shards(tmp_path: Path, model_file: Path, digits_uint8) -> list[Path]:  # type: ignore[no-untyped-def]
    images, _ = digits_uint8
    data = tmp_path / "d"
    data.mkdir()
    for i in range(6):
        Image.fromarray(images[i]).resize((16, 16), Image.NEAREST).save(data / f"d{i}.png")
    shards = []
    for k in range(2):
        out = tmp_path / f"s{k}"
        r = runner.invoke(app, ["score", str(model_file), str(data), "--out", str(out), "--all-heatmaps",
                                "--no-report", "--shard", f"{k}/2"])
        assert r.exit_code == 0, r.output
        shards.append(out)
    return shards


@pytest.mark.parametrize("damage,words", [
    (lambda s: (s / "shard.json").write_text("[1, 2]"), "not a JSON object"),
    (lambda s: (s / "shard.json").write_text(_edit_json(s / "shard.json", "index")), "index is None"),
    (lambda s: (s / "scores.csv").write_text((s / "scores.csv").read_text().splitlines()[0] + "\na,b\n"
                                             + "\n".join((s / "scores.csv").read_text().splitlines()[2:]) + "\n"),
     "line 2 is not a row"),
])
def test_merge_takes_a_damaged_shard_folder_in_one_line(two_shards: list[Path], tmp_path: Path, damage, words: str) -> None:  # type: ignore[no-untyped-def]
    damage(two_shards[1])
    r = runner.invoke(app, ["merge", *map(str, two_shards), "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and words in r.output and "Traceback" not in r.output, (r.output, r.exception)


def _edit_json(path: Path, drop: str) -> str:
    import json as _json

    rec = _json.loads(path.read_text())
    rec.pop(drop)
    return _json.dumps(rec)


def test_merge_never_copies_a_link_planted_in_a_shard(two_shards: list[Path], tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (two_shards[0] / "heatmaps" / "zz_link.png").symlink_to(secret)
    r = runner.invoke(app, ["merge", *map(str, two_shards), "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    copied = sorted(p.name for p in (tmp_path / "m" / "heatmaps").rglob("*"))
    assert "zz_link.png" not in copied and len(copied) == 6
