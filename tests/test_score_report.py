"""``aedetect score`` writes report.html: metrics with meanings, per-kind table, gallery in
score order, heat maps named after their images; the page renders in headless Chromium.

The browser test runs Debian's ``chromium``; it fails (never skips) under CI=true when the
browser is missing, since .ci/run installs it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import save_png

from aedetect.cli import app

runner = CliRunner()
KINDS = ("crack", "hole")


def _digit(digits, i: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return digits.images[i, 0].numpy()


@pytest.fixture(scope="module")
def scored(model_file: Path, digits, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """An MVTec AD layout (30 good, two defect kinds of 8 with masks, one corrupt file) scored
    with default options: heat maps of flagged images only."""
    root = tmp_path_factory.mktemp("mvtec") / "cat"
    (root / "train" / "good").mkdir(parents=True)
    labels = digits.labels.numpy()
    for i in np.flatnonzero(labels == 0)[120:150]:
        save_png(root / "test" / "good" / f"{i:03d}.png", _digit(digits, int(i)))
    ones = np.flatnonzero(labels == 1)
    for k, kind in enumerate(KINDS):
        for j in range(8):
            img = _digit(digits, int(ones[k * 8 + j])).copy()
            mask = np.zeros((8, 8), np.uint8)
            mask[1 + k:4 + k, 2:5] = 255
            img[mask > 0] = 255 - img[mask > 0]
            save_png(root / "test" / kind / f"{j:03d}.png", img)
            save_png(root / "ground_truth" / kind / f"{j:03d}_mask.png", mask)
    (root / "test" / "hole" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    out = tmp_path_factory.mktemp("score") / "out"
    r = runner.invoke(app, ["score", str(model_file), str(root), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


class _Page(HTMLParser):
    """The parts of report.html the tests read: cards (score, path, img src), table rows, images."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, list[dict[str, str]]] = {}
        self.section: str | None = None
        self.rows: dict[str, list[str]] = {}  # data-kind / data-metric -> cell texts
        self._row: str | None = None
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "div" and a.get("class") == "gallery":
            self.section = a["id"]
            self.cards[self.section] = []
        if tag == "figure" and self.section:
            self.cards[self.section].append({"score": a["data-score"], "path": a["data-path"], "img": ""})
        if tag == "img":
            self.images.append(a["src"])
            if self.section and self.cards.get(self.section):
                self.cards[self.section][-1]["img"] = a["src"]
        for k in ("src", "href"):
            if a.get(k, "").startswith(("http:", "https:", "//")):
                self.external.append(a[k])
        if tag in ("link", "script"):
            self.external.append(tag)
        if tag == "tr" and ("data-kind" in a or "data-metric" in a):
            self._row = a.get("data-kind") or a.get("data-metric")
            self.rows[self._row] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self.rows[self._row].append(data.strip())


def _scores(out: Path) -> dict[str, float]:
    with open(out / "scores.csv") as fh:
        return {r["path"]: float(r["score"]) for r in csv.DictReader(fh) if r["score"]}


def _check_page(html: str, out: Path) -> _Page:
    page = _Page()
    page.feed(html)
    scores = _scores(out)
    m = json.loads((out / "metrics.json").read_text())
    # The metrics table: each metric of metrics.json with its value and a meaning.
    for key in ("image_auroc", "image_ap", "f1_at_threshold", "pixel_auroc", "aupro"):
        name, value, meaning = page.rows[key]
        assert float(value) == pytest.approx(m[key], abs=5e-5) and len(meaning) > 30, key
    # The per-kind table: one row per kind with counts that match scores.csv.
    assert set(page.rows) >= {"good", *KINDS}
    for kind in KINDS:
        cells = page.rows[kind]
        assert cells[1] == "anomalous" and int(cells[2]) == (8 if kind == "crack" else 8)  # broken.png is unreadable
        assert 0.0 <= float(cells[4]) <= 1.0 and 0.0 <= float(cells[5]) <= 1.0
        row = next(r for r in m["per_kind"] if r["kind"] == kind)
        assert int(cells[3]) == row["n_flagged"]
    # The gallery: most anomalous first, in the order of scores.csv, every card's score the CSV's.
    top = page.cards["gallery-top"]
    expected = sorted(scores.items(), key=lambda kv: -kv[1])[:len(top)]
    assert [c["path"] for c in top] == [p for p, _ in expected]
    assert [float(c["score"]) for c in top] == pytest.approx([s for _, s in expected], rel=1e-6)
    normals = page.cards["gallery-normals"]
    good = sorted(((p, s) for p, s in scores.items() if "/good/" in p), key=lambda kv: -kv[1])
    assert [c["path"] for c in normals] == [p for p, _ in good[:len(normals)]] and normals
    # Every image the page shows exists in the run folder; nothing is fetched from outside.
    assert not page.external
    for src in page.images:
        assert (out / src).is_file(), src
    return page


def test_report_has_metrics_kinds_and_a_gallery_in_score_order(scored: Path) -> None:
    page = _check_page((scored / "report.html").read_text(), scored)
    # Heat maps keep the image's path below test/: crack/003.png, not 00012_003.png.
    flagged = sorted(p.relative_to(scored / "heatmaps").as_posix() for p in (scored / "heatmaps").rglob("*.png"))
    assert flagged and all(f.split("/")[0] in ("good", *KINDS) for f in flagged)
    card = next(c for c in page.cards["gallery-top"] if c["img"].startswith("heatmaps/"))
    rel = Path(card["path"]).relative_to(Path(card["path"]).parents[1]).as_posix()
    assert card["img"] == f"heatmaps/{rel}"
    assert "broken.png" in (scored / "report.html").read_text()  # the unreadable file is listed


def test_gallery_panels_are_labelled_with_score_and_colour_bar(scored: Path) -> None:
    from PIL import Image

    panel = np.asarray(Image.open(next((scored / "heatmaps").rglob("*.png"))).convert("RGB"))
    h, w, _ = panel.shape
    # Title strip above the tiles and a footer with text and the inferno colour bar below.
    assert (panel[:18] < 128).any(), "tile titles missing"
    footer = panel[h - 34:]
    bar = footer[4:14, (w - 12) // 2 + 8: (w - 12) * 3 // 4]
    assert bar[:, 0].mean() < 40 and bar[:, -1, 0].mean() > 200  # black (0) to yellow (max)
    assert (footer[:, : w // 2] < 100).any(), "score text missing"


# Read from the rendered page: the gallery cards in document order, images that did not load.
_DOM = """JSON.stringify({
  top: [...document.querySelectorAll('#gallery-top figure')].map(f => [f.dataset.path, +f.dataset.score]),
  normals: [...document.querySelectorAll('#gallery-normals figure')].map(f => [f.dataset.path, +f.dataset.score]),
  images: document.images.length,
  broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
  kinds: [...document.querySelectorAll('#kinds tr[data-kind]')].map(r => r.dataset.kind),
  galleryHeight: document.querySelector('#gallery-top').getBoundingClientRect().height
})"""


def test_report_renders_in_headless_chromium(scored: Path, tmp_path: Path) -> None:
    from cdp import Chromium, find_chromium

    if find_chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium: .ci/run should have installed it")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    scores = _scores(scored)
    with Chromium(tmp_path / "profile") as browser:
        load = browser.load((scored / "report.html").resolve().as_uri())
        dom = json.loads(browser.evaluate(_DOM))
        shot = browser.screenshot(tmp_path / "report.png")
        # A page that links a missing file does fail here (the check is not vacuous).
        bad = tmp_path / "bad.html"
        bad.write_text("<!doctype html><img src='nope.png'>")
        assert browser.load(bad.as_uri()).failed
    assert not load.failed and not load.console_errors, (load.failed, load.console_errors)
    assert all(u.startswith("file://") for u in load.requests), load.requests  # nothing from the network
    assert dom["images"] >= 3 + len(dom["top"]) and not dom["broken"], dom["broken"]
    expected = sorted(scores.items(), key=lambda kv: -kv[1])[:len(dom["top"])]
    assert [p for p, _ in dom["top"]] == [p for p, _ in expected] and len(dom["top"]) == 24
    assert [s for _, s in dom["normals"]] == sorted((s for _, s in dom["normals"]), reverse=True)
    assert dom["normals"] and all("/good/" in p for p, _ in dom["normals"])
    assert dom["kinds"] == ["good", *KINDS] and dom["galleryHeight"] > 200
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[1] == 1280 and img.std() > 20  # something is drawn, not a blank page
    keep = os.environ.get("AEDETECT_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
