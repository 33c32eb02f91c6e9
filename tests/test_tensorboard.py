"""fit --tensorboard: scalar and image tags read back with tensorboard's event reader, one
projector row per validation image, run folders side by side, metrics.json."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aedetect.cli import app
from aedetect.core.config import DataConfig
from aedetect.data.sources import load_digits
from aedetect.errors import AedetectError
from aedetect.core.training.fit import fit
from aedetect.core.presets import build_config
from aedetect.core.training.tensorboard import summary_writer_class

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

EPOCHS = 2


def tiny_cfg():  # type: ignore[no-untyped-def]
    return build_config("small", overrides={"model": {"widths": [8, 16]}, "data": {"size": [8, 8]},
                                            "train": {"epochs": EPOCHS, "batch_size": 50, "device": "cpu"},
                                            "anomaly": {"autoencoder": "on"}})  # the loop's logs are tested


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("tb")
    data = load_digits(DataConfig(channels=1, size=(8, 8))).subset(list(range(300)))
    out = fit(data, tiny_cfg(), root / "run", tensorboard=root / "runs", run_name="wd0", model_name="tiny")
    return root, out


def test_event_file_has_scalars_and_images(run) -> None:  # type: ignore[no-untyped-def]
    root, out = run
    logdir = root / "runs" / "tiny" / "wd0"
    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    assert {"loss_step/train", "loss_step/val", "loss_epoch/train", "loss_epoch/val", "lr"} <= set(tags["scalars"])
    assert "reconstructions" in tags["images"]
    n_train = json.loads((out.run_dir / "summary.json").read_text())["training"]["train_images"]
    steps = math.ceil(n_train / 50)
    assert [e.step for e in ea.Scalars("loss_step/train")] == list(range(1, EPOCHS * steps + 1))
    assert [e.step for e in ea.Scalars("loss_step/val")] == [steps * k for k in range(1, EPOCHS + 1)]
    vals = [e.value for e in ea.Scalars("loss_epoch/val")]
    hist = [h["val_loss"] for h in out.result.history]
    assert vals == pytest.approx(hist, rel=1e-5)
    imgs = ea.Images("reconstructions")
    assert [i.step for i in imgs] == list(range(1, EPOCHS + 1))
    # 8 inputs over 8 reconstructions, 8x8 upscaled to 64 px, 2 px padding
    assert (imgs[0].width, imgs[0].height) == (8 * 66 + 2, 2 * 66 + 2)


def test_projector_has_one_row_per_validation_image(run) -> None:  # type: ignore[no-untyped-def]
    root, out = run
    logdir = root / "runs" / "tiny" / "wd0"
    n_val = len(out.data.split(0.1, 0)[1])
    proj = list(logdir.glob("*/latent_codes/tensors.tsv"))
    assert len(proj) == 1
    rows = proj[0].read_text().strip().splitlines()
    assert len(rows) == n_val == 30
    assert len(rows[0].split("\t")) == 16 * 2 * 2  # 16 channels at 2x2
    meta = (proj[0].parent / "metadata.tsv").read_text().strip().splitlines()
    assert len(meta) == n_val and set(meta) <= {str(k) for k in range(10)}
    assert (proj[0].parent / "sprite.png").is_file()
    assert "latent_codes" in (logdir / "projector_config.pbtxt").read_text()


def test_metrics_json(run) -> None:  # type: ignore[no-untyped-def]
    _, out = run
    m = json.loads((out.run_dir / "metrics.json").read_text())
    assert m["val_images"] == 30
    assert math.isfinite(m["val_mse"]) and m["val_mse"] == pytest.approx(out.result.best_val_loss, rel=1e-4)
    assert m["test_mse"] is None and "ImageSet" in m["test_reason"]


def test_runs_side_by_side_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["fit", "digits", "--preset", "small", "--set", "model.widths=[8]", "--size", "8", "--epochs", "1",
            "--max-images", "200", "--tensorboard", "--run-name", "a"]
    for out in ("r1", "r2"):
        r = runner.invoke(app, [*args, "--out", out])
        assert r.exit_code == 0, r.output
    runs = sorted(p.name for p in (tmp_path / "runs" / "small").iterdir())
    assert runs == ["a", "a-2"]  # the second run never writes into the first one's folder
    assert all(list((tmp_path / "runs" / "small" / n).glob("events.out.tfevents.*")) for n in runs)


def test_missing_tensorboard_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(AedetectError, match=r"pip install 'aedetect\[tensorboard\]'"):
        summary_writer_class()
