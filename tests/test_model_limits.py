"""A crafted model file, its checksum recomputed, is refused in one line before anything is
allocated; a malformed calibration field is one line, not a traceback (issue 27, item 4)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import rewrite_model_meta

import aedetect.core.modelfile.file as modelfile
from aedetect.cli import app
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.modelfile.header import RECORD_KEY, record_digest
from aedetect.core.modelfile.file import load_model, save_model
from aedetect.core.presets import build_config
from aedetect.errors import ModelFileError

runner = CliRunner()


def craft(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """Edit the record and recompute its checksum, as anyone can."""
    def both(m):  # type: ignore[no-untyped-def]
        edit(m)
        m[RECORD_KEY] = record_digest(m)
    rewrite_model_meta(path, both)
    return path


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    cfg = build_config("small", overrides={"data": {"size": [16, 16]}})
    torch.manual_seed(0)
    return save_model(tmp_path / "m.safetensors", ConvAutoencoder(cfg.model), cfg,
                      calibration={"threshold": 0.0125, "pixel_threshold": 0.5, "spread": 0.01})


@pytest.fixture()
def no_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every ConvAutoencoder the loader builds, on the meta device too."""
    built: list[str] = []

    class Spy(ConvAutoencoder):
        def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
            built.append("built")
            super().__init__(*a, **k)

    monkeypatch.setattr(modelfile, "ConvAutoencoder", Spy)
    return built


CRAFTED = {
    "size 8000": (lambda m: m["config"]["data"].__setitem__("size", [8000, 8000]), "GiB for one image"),
    "size 1e6": (lambda m: m["config"]["data"].__setitem__("size", [1000000, 1000000]), "data.size"),
    "24 levels": (lambda m: m["config"]["model"].__setitem__("widths", [1] * 24), "levels"),
    "convs 30000": (lambda m: m["config"]["model"].__setitem__("convs_per_level", 30000), "convs_per_level"),
    "width 1e6": (lambda m: m["config"]["model"].__setitem__("widths", [16, 32, 1000000]), "model.widths"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_sizes_are_refused_before_any_layer_is_built(saved: Path, no_build: list[str], case: str) -> None:
    edit, words = CRAFTED[case]
    craft(saved, edit)
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match=words) as e:
        load_model(saved)
    assert time.perf_counter() - t0 < 2 and no_build == []
    assert str(saved) in str(e.value) and "\n" not in str(e.value)


def test_the_checksum_comes_before_the_shapes(saved: Path, no_build: list[str]) -> None:
    """convs_per_level 30000 with a wrong checksum took 47 s and 2.3 GB building shapes."""
    rewrite_model_meta(saved, lambda m: m["config"]["model"].__setitem__("convs_per_level", 30000))
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match="does not match its checksum"):
        load_model(saved)
    assert time.perf_counter() - t0 < 2 and no_build == []


def _bank(shape: list[int], n: int | None = None) -> dict:  # type: ignore[type-arg]
    data = np.zeros(n if n is not None else int(np.prod(shape)), np.float16).tobytes()
    return {"shape": shape, "float16_base64": base64.b64encode(data).decode()}


BAD_CALIBRATION = {
    "pixel_threshold missing": (lambda c: c.pop("pixel_threshold"), "pixel_threshold is missing"),
    "spread text": (lambda c: c.__setitem__("spread", "x"), "spread is 'x'"),
    "bank of the wrong size": (lambda c: c.__setitem__("latent_bank", _bank([10, 8], n=70)), "latent_bank holds"),
    "bank not base64": (lambda c: c.__setitem__("latent_bank", {"shape": [2, 2], "float16_base64": "@@@"}),
                        "not valid base64"),
    "latent_grid 3000": (lambda c: c["settings"].__setitem__("latent_grid", 3000), "latent_grid"),
    "map unknown": (lambda c: c["settings"].__setitem__("map", "nope"), "settings are invalid"),
    "backbone garbage": (lambda c: (c["settings"].__setitem__("map", "pretrained"),
                                    c.__setitem__("feature_bank", _bank([4, 176])),
                                    c.__setitem__("pretrained_backbone", {"safetensors_base64": "AAAA"})),
                         "pretrained_backbone does not decode"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALIBRATION))
def test_malformed_calibration_fields_are_one_line(tmp_path: Path, model_file: Path, case: str) -> None:
    edit, words = BAD_CALIBRATION[case]
    m = tmp_path / "m.safetensors"
    m.write_bytes(model_file.read_bytes())

    def change(meta):  # type: ignore[no-untyped-def]
        cal = meta["calibration"]
        cal.setdefault("settings", {})
        cal["settings"].update(latent="knn")
        cal.setdefault("latent_bank", _bank([20, 8]))
        cal.setdefault("recon_scale", 1.0)
        cal.setdefault("latent_scale", 1.0)
        edit(cal)
    craft(m, change)
    img = tmp_path / "d"
    img.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(img / "a.png")
    r = runner.invoke(app, ["score", str(m), str(img), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and words in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["score", "calibrate", "export"])
def test_a_malformed_calibration_is_refused_before_the_model_is_built(tmp_path: Path, model_file: Path,
                                                                     monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    devices: list[str] = []

    class Spy(ConvAutoencoder):
        def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **k)
            devices.append(next(self.parameters()).device.type)

    monkeypatch.setattr(modelfile, "ConvAutoencoder", Spy)
    m = tmp_path / "m.safetensors"
    m.write_bytes(model_file.read_bytes())
    craft(m, lambda meta: meta["calibration"].__setitem__("spread", "x"))
    img = tmp_path / "d"
    img.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(img / "a.png")
    args = {"score": ["score", str(m), str(img), "--out", str(tmp_path / "o")],
            "calibrate": ["calibrate", str(m), str(img), "--out", str(tmp_path / "c.safetensors")],
            "export": ["export", str(m), "--out", str(tmp_path / "m.onnx")]}[command]
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "calibration.spread is 'x'" in r.output, r.output
    assert "cpu" not in devices  # refused on the metadata: shapes on the meta device only, no tensor read


def test_denoise_refuses_another_tasks_file_before_building_it(tmp_path: Path, model_file: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from aedetect.denoise.denoiser import Denoiser

    built: list[str] = []
    monkeypatch.setattr(modelfile, "ConvAutoencoder", lambda *a, **k: built.append("built"))
    with pytest.raises(ModelFileError, match="an anomaly model; `denoise` needs"):
        Denoiser.load(model_file, device="cpu")
    assert built == []
