"""The model file: identical outputs after a round trip; clear errors for damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import rewrite_model_meta

from aedetect.core.modelfile.file import FORMAT_VERSION, load_model, read_metadata, save_model
from aedetect.errors import ModelFileError
from aedetect.core.model.cae import ConvAutoencoder
from aedetect.core.presets import build_config


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, ConvAutoencoder]:
    cfg = build_config("estimator", overrides={"model": {"norm": "batch"}})
    model = ConvAutoencoder(cfg.model)
    with torch.no_grad():  # non-trivial batch-norm statistics must round-trip too
        model(torch.rand(4, 1, 28, 28))
    model.eval()
    path = save_model(tmp_path / "m.safetensors", model, cfg, training={"epochs_run": 3},
                      calibration={"threshold": 0.25})
    return path, model


def test_round_trip_gives_identical_outputs(saved: tuple[Path, ConvAutoencoder]) -> None:
    path, model = saved
    mf = load_model(path)
    loaded, original = mf.model.state_dict(), model.state_dict()
    assert loaded.keys() == original.keys()
    assert all(torch.equal(loaded[k], original[k]) for k in original)
    # Loading puts a conv model in the layout training uses (channels_last); in the same layout
    # the outputs are bit-identical.
    weight = next(p for p in mf.model.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    model.to(memory_format=torch.channels_last)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(mf.model(x), model(x))
    assert mf.calibration == {"threshold": 0.25}
    assert mf.metadata["format_version"] == FORMAT_VERSION
    assert mf.config.model.up == "transpose"


def test_truncated_file(saved: tuple[Path, ConvAutoencoder]) -> None:
    path, _ = saved
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model(path)


def test_tampered_weights_fail_the_checksum(saved: tuple[Path, ConvAutoencoder]) -> None:
    path, _ = saved
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(path)


def test_tampered_config_is_caught_by_shape_check(saved: tuple[Path, ConvAutoencoder]) -> None:
    path, _ = saved
    from aedetect.core.modelfile.header import RECORD_KEY, record_digest

    def crafted(m):  # type: ignore[no-untyped-def]
        m["config"]["model"]["widths"] = [8, 16, 32]
        m[RECORD_KEY] = record_digest(m)  # recomputed (the checksum alone refuses an edit first)

    rewrite_model_meta(path, crafted)
    with pytest.raises(ModelFileError, match="shape"):
        load_model(path)


def test_newer_format_version_is_refused(saved: tuple[Path, ConvAutoencoder]) -> None:
    path, _ = saved
    rewrite_model_meta(path, lambda m: m.__setitem__("format_version", FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="upgrade aedetect"):
        load_model(path)
    assert read_metadata(path)["format_version"] == FORMAT_VERSION + 1


def test_not_a_model_file(tmp_path: Path) -> None:
    p = tmp_path / "x.safetensors"
    p.write_text("hello")
    with pytest.raises(ModelFileError):
        load_model(p)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.safetensors")
