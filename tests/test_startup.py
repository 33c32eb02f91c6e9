"""Start-up: ``--help``, ``info MODEL`` and usage errors answer without importing torch, and
``info`` read from the header says what building the model says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEGACY = REPO / "tests" / "fixtures" / "legacy" / "anomaly-digits.safetensors"

# Runs the CLI in a fresh interpreter, then prints whether torch got imported and the exit code.
PROBE = (
    "import sys\n"
    "from aedetect.cli import main\n"
    "try:\n"
    "    main()\n"
    "    code = 0\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "print('@@', 'torch' in sys.modules, code, file=sys.stderr)\n"
)


def _run(*argv: str) -> tuple[bool, int, str]:
    p = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    torch, code = p.stderr.strip().splitlines()[-1].split()[1:]
    return torch == "True", int(code), p.stdout + p.stderr


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["score", "--help"], 0),
    (["fit", "--help"], 0),
    (["score"], 64),  # missing arguments: a usage error, not 2 ("flagged")
    (["score", str(LEGACY), "DATA", "--batch-size", "0"], 64),
    (["score", str(LEGACY), "DATA", "--batch-size", "x"], 64),
    (["denoise", str(LEGACY), "in", "--out", "o", "--overlap", "-5"], 64),
    (["calibrate", str(LEGACY), "DATA", "--out", "n.safetensors", "--target-fpr", "2"], 64),
    (["nosuchcommand"], 64),
    (["info", str(LEGACY)], 0),
    (["info", str(LEGACY), "--json"], 0),
])
def test_answers_without_importing_torch(argv: list[str], code: int) -> None:
    torch, got, out = _run(*argv)
    assert got == code, out
    assert not torch, f"aedetect {' '.join(argv)} imported torch"


def test_info_from_the_header_matches_the_built_model(tmp_path: Path) -> None:
    """Parameter counts from tensor shapes equal ConvAutoencoder.parameter_counts() for every
    anomaly preset (BatchNorm buffers, dense bottlenecks and MLPs included), and the numpy
    checksum equals modelfile's on tensors."""
    from aedetect.core.model.cae import ConvAutoencoder
    from aedetect.core.modelfile.header import _numpy_digest, read_header
    from aedetect.core.modelfile.info import describe
    from aedetect.core.modelfile.file import _digest, save_model
    from aedetect.core.presets import PRESETS, build_config

    checked = 0
    for name in PRESETS:
        cfg = build_config(name)
        if cfg.task != "anomaly":
            continue
        model = ConvAutoencoder(cfg.model)
        path = save_model(tmp_path / f"{name}.safetensors", model, cfg, calibration={"threshold": 1.0})
        assert describe(str(path))["parameters"] == model.parameter_counts()["parameters"], name
        head = read_header(path)
        assert head.parameter_counts() == model.parameter_counts(), name
        from safetensors.numpy import load_file

        assert _numpy_digest(load_file(str(path))) == _digest(model.state_dict()), name
        checked += 1
    assert checked >= 5
    d = describe(str(LEGACY))
    assert d["kind"] == "model" and d["task"] == "anomaly" and d["parameters"] == 3065


def test_info_refuses_a_damaged_file_without_torch(tmp_path: Path) -> None:
    raw = bytearray(LEGACY.read_bytes())
    raw[-5] ^= 0xFF  # a weight byte (the tensors follow the header)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(raw))
    torch, code, out = _run("info", str(bad))
    assert code == 1 and "checksum" in out and "Traceback" not in out and not torch
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    torch, code, out = _run("info", str(tmp_path / "junk.safetensors"))
    assert code == 1 and "junk.safetensors" in out and "Traceback" not in out


def test_info_json_is_unchanged_by_the_header_path() -> None:
    """The --json record of a model file has the keys and values it had when the model was built."""
    from aedetect.core.modelfile.file import load_model

    torch, code, out = _run("info", str(LEGACY), "--json")
    d = json.loads(out[:out.rindex("}") + 1])
    mf = load_model(LEGACY)
    assert d["config"] == mf.config.to_dict()
    assert {k: d[k] for k in ("parameters", "encoder_parameters", "decoder_parameters")} == mf.model.parameter_counts()
    assert d["calibration"]["threshold"] == mf.calibration["threshold"]


def test_make_grid_is_torchvisions() -> None:
    """core.plots.make_grid (so training needs no torchvision) lays tiles out as torchvision does."""
    import torch
    from torchvision.utils import make_grid as tv_make_grid

    from aedetect.core.plots import make_grid

    g = torch.Generator().manual_seed(0)
    for n, c, nrow, pad in ((1, 1, 8, 2), (5, 1, 2, 2), (8, 3, 8, 2), (7, 3, 3, 0), (3, 1, 8, 5)):
        t = torch.rand(n, c, 6, 9, generator=g)
        assert torch.equal(make_grid(t, nrow=nrow, padding=pad, pad_value=1.0),
                           tv_make_grid(t, nrow=nrow, padding=pad, pad_value=1.0)), (n, c, nrow, pad)
