"""ONNX export (issue 14, part 3): onnxruntime against PyTorch on real images.

Tolerances: 1e-5 absolute on reconstructions and denoised images (values in [0, 1]); 3e-5
absolute on maps and 3e-5 relative on image scores. Both sides compute in float32 with the
same operations; what differs is the order of the sums inside the convolutions (onnxruntime's
MLAS kernels against oneDNN), each rounding at float32's 6e-8 over at most a few thousand
terms. The SSIM map amplifies that: its variances are differences of nearly equal blurred
squares divided by c2 = 9e-4. Measured (max): reconstruction 5.4e-7, denoised 1.2e-7, map
2.4e-7 (mse) and 3.8e-6 (mse + ssim mix), score 1.8e-7 and 1.6e-6 relative.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from aedetect import AnomalyDetector, Denoiser
from aedetect.anomaly.jobs.export import export_anomaly
from aedetect.cli import app
from aedetect.core.modelfile.file import load_model, save_model
from aedetect.core.modelfile.onnx import read_onnx_metadata, require_onnx
from aedetect.data.imageset import ImageSet
from aedetect.data.sources import texture_crops
from aedetect.denoise.export import export_denoise
from aedetect.errors import ExportError

TOL = 1e-5
MAP_TOL = 3e-5
runner = CliRunner()


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_anomaly_parity(model_path: Path, onnx_path: Path, images: torch.Tensor, max_value: float) -> None:
    """Reconstruction, map, score and flag of the ONNX file against AnomalyDetector.score."""
    det = AnomalyDetector.load(model_path, device="cpu")
    res = det.score(ImageSet(images=images, max_value=max_value))
    meta = session(onnx_path).get_modelmeta().custom_metadata_map
    rec, m, score = session(onnx_path).run(None, {"images": images.numpy().astype(np.float32) / max_value})
    assert rec.shape == res.recon.shape and m.shape == (len(images), 1, *res.maps.shape[1:])
    assert np.abs(rec - res.recon).max() <= TOL
    assert np.abs(m[:, 0] - res.maps).max() <= MAP_TOL
    assert np.abs(score - res.scores).max() <= MAP_TOL * np.abs(res.scores).max()
    threshold = float(meta["threshold"])
    assert threshold == det.threshold_ and float(meta["pixel_threshold"]) == det.pixel_threshold_
    flags = score > threshold
    # The threshold is a calibration image's own score: only there may 1e-7 tip the flag.
    clear = np.abs(res.scores - threshold) > MAP_TOL * abs(threshold)
    assert np.array_equal(flags[clear], res.flags[clear]) and clear.sum() >= len(images) - 1
    assert 0 < res.flags.sum() < len(images)  # both outcomes occur, so the comparison means something
    norm = 1 / (1 + np.exp(-(score.astype(np.float64) - threshold) / float(meta["spread"])))
    assert np.abs(norm - res.normalized).max() < 1e-4


def test_anomaly_parity_on_digits(model_file: Path, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = export_anomaly(load_model(model_file), tmp_path / "digits.onnx")
    meta = read_onnx_metadata(out)
    assert meta["task"] == "anomaly" and meta["size"] == "[8, 8]" and meta["flag"] == "score > threshold"
    # 300 digits (zeros and others) in one batch: the batch axis is dynamic (exported with 2).
    check_anomaly_parity(model_file, out, digits.images[:300], digits.max_value)
    rec, m, score = session(out).run(None, {"images": digits.images[:1].numpy().astype(np.float32) / 255})
    assert score.shape == (1,)


@pytest.fixture(scope="module")
def grass_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    """A texture model (grass crops, [-1, 1] scaling) whose score is the SSIM+MSE mix, smoothed,
    top-k, plus the latent kNN part on a bank of training images; trained briefly (parity
    needs a real model, not a good one)."""
    crops = texture_crops("grass", 32, 12, rows=(0.0, 0.75))
    det = AnomalyDetector(preset="small", epochs=3, anomaly={
        "map": "mix", "mix": {"mse": 1.0, "ssim": 0.05}, "smooth_sigma": 1.5, "latent": "knn",
        "latent_bank": "train", "latent_source": "features", "latent_metric": "cosine"},
        # lr 1e-4: at 2e-3 (and 1e-3, 3e-4) this small [-1, 1] model collapses to the mean image,
        # which fit now refuses (aedetect.core.training.train.OutputCollapsed).
        overrides={"data": {"scaling": "symmetric"}, "train": {"batch_size": 32, "lr": 1e-4}}).fit(ImageSet(images=crops))
    path = det.save(tmp_path_factory.mktemp("grass") / "grass.safetensors")
    return path, texture_crops("grass", 32, 16, rows=(0.75, 1.0))


def test_anomaly_parity_mix_ssim_latent_knn_symmetric(grass_model: tuple[Path, torch.Tensor], tmp_path: Path) -> None:
    path, test = grass_model
    mf = load_model(path)
    assert mf.calibration["latent_bank"]["shape"][0] > 16 + 5  # the shortlist path of the kNN graph
    out = export_anomaly(mf, tmp_path / "grass.onnx")
    # Test crops from a band never trained on, with a bright square pasted into half of them.
    test = test.clone()
    test[::2, :, 8:16, 8:16] = 255
    check_anomaly_parity(path, out, test, 255.0)


def test_anomaly_parity_raw_pixel_knn(tmp_path: Path) -> None:
    """``latent_source = pixels`` on 40x40 crops: the input averaged to 32x32 (not a factor of
    40) is the kNN vector, in the graph as in PyTorch."""
    crops = texture_crops("grass", 40, 16, rows=(0.0, 0.5))
    det = AnomalyDetector(preset="small", epochs=2, anomaly={
        "latent": "knn", "latent_bank": "train", "latent_source": "pixels"},
        overrides={"train": {"batch_size": 32, "lr": 1e-4}}).fit(ImageSet(images=crops))
    path = det.save(tmp_path / "pixels.safetensors")
    assert load_model(path).calibration["latent_bank"]["shape"][1] == 32 * 32
    test = texture_crops("grass", 40, 16, rows=(0.75, 1.0)).clone()
    test[::2, :, 8:16, 8:16] = 255
    check_anomaly_parity(path, export_anomaly(load_model(path), tmp_path / "pixels.onnx"), test, 255.0)


def test_anomaly_parity_learned_map(digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The learned map's network travels in the graph; the image score is the map's mean."""
    zeros = digits.subset(np.flatnonzero(digits.labels.numpy() == 0)[:120].tolist())
    det = AnomalyDetector(preset="small", epochs=3, anomaly={"map": "learned", "learned_steps": 200,
                                                             "learned_batch": 8, "score": "mean"},
                          overrides={"train": {"batch_size": 32, "lr": 3e-3}}).fit(zeros)
    path = det.save(tmp_path / "learned.safetensors")
    out = export_anomaly(load_model(path), tmp_path / "learned.onnx")
    check_anomaly_parity(path, out, digits.images[:300], digits.max_value)


def test_cli_exports_refuses_an_existing_file_and_the_features_map(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export", str(model_file), "--format", "onnx", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.is_file() and read_onnx_metadata(out)["task"] == "anomaly"
    before = out.read_bytes()
    r = runner.invoke(app, ["export", str(model_file), "--out", str(out)])
    assert r.exit_code == 1 and "file exists" in r.output and len(r.output.strip().splitlines()) == 1
    assert out.read_bytes() == before
    r = runner.invoke(app, ["export", str(model_file), "--out", str(out), "--format", "torchscript"])
    assert r.exit_code == 64 and "--format" in r.output  # a usage error (issue 27)
    # A model whose calibration names the features map: one line saying it cannot be exported.
    mf = load_model(model_file)
    cal = {**mf.calibration, "settings": {**mf.calibration["settings"], "map": "features"}}
    feat = save_model(tmp_path / "features.safetensors", mf.model, mf.config, calibration=cal)
    r = runner.invoke(app, ["export", str(feat), "--out", str(tmp_path / "f.onnx")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "'features' cannot be exported" in r.output and not (tmp_path / "f.onnx").exists()


def test_missing_extra_is_one_line_naming_it(model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # what an install without the extra sees
    with pytest.raises(ExportError, match=r'aedetect\[onnx\]'):
        require_onnx()
    r = runner.invoke(app, ["export", str(model_file), "--out", str(tmp_path / "m.onnx")])
    assert r.exit_code == 1 and 'pip install "aedetect[onnx]"' in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "m.onnx").exists()


# ---- denoise ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def denoiser(tmp_path_factory: pytest.TempPathFactory) -> Denoiser:
    """A small U-Net trained briefly on crops of scikit-image photographs."""
    from skimage import data

    train = [np.asarray(getattr(data, n)())[::2, ::2] for n in ("coins", "moon", "page")]
    den = Denoiser("denoise-unet", level=25, overrides={
        "model": {"widths": [16, 32], "convs_per_level": 1},
        "train": {"epochs": 4, "batch_size": 8, "lr": 2e-3, "grid_every": 0, "seed": 0},
        "denoise": {"patch_size": 32, "crops_per_image": 32}})
    return den.fit(train, out=tmp_path_factory.mktemp("denoise_run"))


def psnr(a: np.ndarray, clean: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.clip(a, 0, 1) - clean) ** 2)))


def test_denoise_parity_at_two_sizes(denoiser: Denoiser, tmp_path: Path) -> None:
    from skimage import data

    out = export_denoise(load_model(denoiser.model_path), tmp_path / "den.onnx")
    meta = read_onnx_metadata(out)
    assert meta["task"] == "denoise" and meta["size"] == "any" and int(meta["margin"]) == 32
    sess = session(out)
    camera = np.asarray(data.camera()).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    # Two sizes, neither a multiple of the stride, and two batch sizes: H and W are dynamic.
    for (h, w), n in (((120, 97), 2), ((67, 150), 1)):
        clean = np.stack([camera[100 * i:100 * i + h, 200:200 + w] for i in range(n)])[:, None]
        noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
        got = sess.run(None, {"images": noisy})[0]
        want = denoiser.denoise_tensor(torch.from_numpy(noisy)).numpy()
        assert got.shape == noisy.shape
        assert np.abs(got - want).max() <= TOL
        # It does denoise (about +4 dB measured), so the parity is of a working model.
        assert psnr(got, clean) > psnr(noisy, clean) + 2.0


def test_denoise_export_refuses_an_anomaly_model(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a denoise model"):
        export_denoise(load_model(model_file), tmp_path / "x.onnx")
