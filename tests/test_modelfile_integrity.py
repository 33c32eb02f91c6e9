"""The model file's metadata is covered by its digest, and shapes are checked before any
layer is built (issue 11, items 3 and 10)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import rewrite_model_meta

import aedetect.core.modelfile.file as modelfile
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.modelfile.file import FORMAT_VERSION, RECORD_KEY, load_model, read_metadata, save_model
from aedetect.core.modelfile.header import record_digest
from aedetect.core.presets import build_config
from aedetect.errors import ModelFileError

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    cfg = build_config("small", overrides={"data": {"size": [16, 16]}})
    torch.manual_seed(0)
    return save_model(tmp_path / "m.safetensors", ConvAutoencoder(cfg.model), cfg,
                      calibration={"threshold": 0.0125, "pixel_threshold": 0.5})


def test_every_key_is_covered_by_the_record_digest(saved: Path) -> None:
    meta = read_metadata(saved)
    assert meta["format_version"] == FORMAT_VERSION == 2 and len(meta[RECORD_KEY]) == 64
    load_model(saved)  # untouched: loads


@pytest.mark.parametrize("edit", [
    lambda m: m["calibration"].__setitem__("threshold", 0.0250),  # one digit: twice the threshold
    lambda m: m.__setitem__("task", "denoise"),  # an anomaly model run as a denoiser
    lambda m: m["config"]["model"].__setitem__("activation", "elu"),  # same shapes, other outputs
    lambda m: m["config"]["data"].__setitem__("scaling", "symmetric"),
], ids=["threshold", "task", "activation", "scaling"])
def test_edited_metadata_is_refused_in_one_line(saved: Path, edit) -> None:  # type: ignore[no-untyped-def]
    rewrite_model_meta(saved, edit)
    with pytest.raises(ModelFileError, match="metadata does not match its checksum") as e:
        load_model(saved)
    assert str(saved) in str(e.value) and "\n" not in str(e.value)


def test_deleting_the_digest_of_a_format_2_file_is_refused(saved: Path) -> None:
    rewrite_model_meta(saved, lambda m: m.pop(RECORD_KEY))
    with pytest.raises(ModelFileError, match="metadata checksum missing"):
        load_model(saved)


def test_format_1_files_load_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    legacy = tmp_path / "old.safetensors"
    shutil.copy(LEGACY / "anomaly-digits.safetensors", legacy)
    assert RECORD_KEY not in read_metadata(legacy) and read_metadata(legacy)["format_version"] == 1
    with caplog.at_level(logging.WARNING, logger="aedetect"):
        mf = load_model(legacy)
    assert mf.config.task == "anomaly"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "without a metadata checksum" in warnings[0] and str(legacy) in warnings[0]


def test_huge_claimed_widths_are_refused_before_any_layer_is_built(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small file whose config claims widths of 4096: the tensors in the header cannot fit, and
    no model is built off the ``meta`` device (the old loader allocated the model first)."""
    huge = [4096] * len(read_metadata(saved)["config"]["model"]["widths"])  # same layers, other widths
    def crafted(m):  # type: ignore[no-untyped-def]
        m["config"]["model"]["widths"] = huge
        m[RECORD_KEY] = record_digest(m)  # recomputed, as anyone can: the shapes still refuse it

    rewrite_model_meta(saved, crafted)
    cfg = build_config("small", overrides={"data": {"size": [16, 16]}, "model": {"widths": huge}})
    with torch.device("meta"):
        claimed = sum(p.numel() for p in ConvAutoencoder(cfg.model).parameters()) * 4
    assert claimed > 500e6 and saved.stat().st_size < 200e3  # what the crafted file would cost

    built: list[str] = []

    class Spy(ConvAutoencoder):
        def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **k)
            built.append(next(self.parameters()).device.type)

    monkeypatch.setattr(modelfile, "ConvAutoencoder", Spy)
    with pytest.raises(ModelFileError, match="has shape"):
        load_model(saved)
    assert "cpu" not in built


def test_header_length_beyond_the_file_is_a_clean_error(saved: Path) -> None:
    raw = bytearray(saved.read_bytes())
    raw[0:8] = (len(raw) * 4).to_bytes(8, "little")
    saved.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model(saved)
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        read_metadata(saved)
