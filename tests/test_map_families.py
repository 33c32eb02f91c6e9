"""Map families are registered objects (issue 26): every ``anomaly.map`` name has one, the code
that scores, calibrates, checks and exports asks it instead of comparing names, and a new family
is one object plus :func:`~aedetect.anomaly.maps.registry.register` (docs/architecture.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import aedetect.anomaly.maps.registry as registry
from aedetect import AnomalyDetector
from aedetect.anomaly import settings
from aedetect.anomaly.maps.family import BatchPass, MapFamily, MapState, smooth
from aedetect.anomaly.settings import AnomalySettings
from aedetect.errors import ConfigError

PKG = Path(__file__).resolve().parents[1] / "aedetect"


def test_every_map_name_has_one_family_and_every_family_its_names() -> None:
    assert set(settings.MAPS) == {n for f in registry.families() for n in f.names}
    for name in settings.MAPS:
        assert name in registry.family_of(name).names
    assert registry.family_of(AnomalySettings(map="mix")) is registry.family_of("mse")


def test_the_families_say_what_they_need() -> None:
    fam = registry.family_of
    assert [fam(n).keys for n in ("mse", "features", "pretrained", "learned")] == \
        [(), ("feature_bank",), ("feature_bank",), ("segmenter",)]
    assert [n for n in settings.MAPS if fam(n).not_exportable] == ["features", "pretrained"]
    assert [n for n in settings.MAPS if not fam(n).reads_autoencoder] == ["pretrained"]
    assert registry.uses_backbone(AnomalySettings(map="pretrained"))
    assert registry.uses_backbone(AnomalySettings(map="mse", latent="knn", latent_source="pretrained"))
    assert not registry.uses_backbone(AnomalySettings(map="learned", latent_source="pretrained"))  # no knn


def test_no_dispatch_on_a_map_name_outside_the_families() -> None:
    """``s.map == "features"`` and its kind live in the family objects only (the selection's
    candidates name maps as data, which is not dispatch)."""
    pattern = re.compile(r"\.map\s*(==|!=|in)\s*\(?\s*[\"']")
    found = [f"{p.relative_to(PKG)}:{i}" for p in PKG.rglob("*.py") if "families" not in p.parts
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


class MaxChannelError(MapFamily):
    """The largest absolute error over the channels: the docs' example of a new family."""

    names = ("maxabs",)

    def raw_map(self, p: BatchPass, s: AnomalySettings, state: MapState) -> torch.Tensor:
        return (p.x_unit - p.y_unit).abs().amax(1, keepdim=True)


@pytest.fixture()
def maxabs(monkeypatch: pytest.MonkeyPatch) -> MapFamily:
    """The example family, registered for one test (the registry and the names put back after)."""
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    monkeypatch.setattr(settings, "MAPS", settings.MAPS)
    return registry.register(MaxChannelError())


def test_a_name_is_one_family(maxabs: MapFamily) -> None:
    with pytest.raises(ValueError, match="'maxabs' is already MaxChannelError's"):
        registry.register(MaxChannelError())
    registry.register(maxabs)  # the same object again changes nothing


def test_an_unregistered_map_is_refused() -> None:
    with pytest.raises(ConfigError, match="anomaly.map: 'maxabs' is not one of"):
        AnomalySettings.from_config({"map": "maxabs"})


def test_a_new_family_fits_scores_loads_and_exports(maxabs: MapFamily, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One object and register(): fit, calibration, the model file, scoring and the ONNX graph."""
    labels = digits.labels.numpy()
    zeros, others = np.flatnonzero(labels == 0), np.flatnonzero(labels != 0)
    train = digits.subset(zeros[:100].tolist())
    test = digits.subset(zeros[100:120].tolist() + others[:20].tolist())
    det = AnomalyDetector(preset="small", epochs=2, anomaly={"map": "maxabs", "select": "none", "autoencoder": "on"},
                          overrides={"model": {"widths": [8, 16]}, "train": {"batch_size": 32}},
                          device="cpu").fit(train)
    res = det.score(test)
    want = smooth(torch.from_numpy(np.abs(res.inputs - res.recon)).amax(1, keepdim=True), 1.0)[:, 0].numpy()
    assert np.abs(res.maps - want).max() < 1e-6
    path = det.save(tmp_path / "m.safetensors")
    again = AnomalyDetector.load(path, device="cpu").score(test, keep_images=False)
    assert np.array_equal(again.scores, res.scores)

    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from aedetect.anomaly.jobs.export import export_anomaly
    from aedetect.core.modelfile.file import load_model

    graph = export_anomaly(load_model(path), tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    x = test.images.numpy().astype(np.float32) / test.max_value
    _, m, score = sess.run(None, {"images": x})
    assert np.abs(m[:, 0] - res.maps).max() < 3e-5 and np.abs(score - res.scores).max() < 3e-5 * np.abs(res.scores).max()
    assert sess.get_modelmeta().custom_metadata_map["map"] == "maxabs"
