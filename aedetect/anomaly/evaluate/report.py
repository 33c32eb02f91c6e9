"""``report.html`` of a score run: one page a person reads, that opens offline.

Plain HTML with inline CSS and relative links to the run folder's PNGs (no script, no CDN, no
web font), so the folder can be zipped, mailed and opened anywhere. Sections: the run, the
metrics with what each one means, ROC / PR / score histogram, the per-kind table (labelled
data), and the gallery sorted by score: most anomalous first, then the highest-scored normal
images, which is where a threshold that is too low shows first.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from aedetect.anomaly.evaluate.gallery import GalleryItem
from aedetect.anomaly.evaluate.kinds import KindRow
from aedetect.util.fsutil import write_text_atomic

# (key in metrics.json, name, what it means), in the order of the table.
METRIC_MEANINGS = (
    ("image_auroc", "image AUROC",
     "Probability that a random anomalous image scores higher than a random normal one (0.5 = chance, 1 = perfect ranking); independent of the threshold."),
    ("image_ap", "image AP",
     "Average precision: the area under the precision-recall curve; on rare anomalies more telling than AUROC."),
    ("f1_at_threshold", "F1 at threshold",
     "Harmonic mean of precision and recall of the flags this model raises with its calibrated threshold."),
    ("precision_at_threshold", "precision at threshold", "Of the images flagged, the fraction that are anomalous."),
    ("recall_at_threshold", "recall at threshold", "Of the anomalous images, the fraction flagged."),
    ("fpr_at_threshold", "FPR at threshold", "Of the normal images, the fraction flagged (false alarms)."),
    ("best_f1", "best F1",
     "The F1 the best possible threshold on this data would give (see best_f1_threshold); a large gap to F1 at threshold means the threshold, not the model, is the problem."),
    ("best_f1_threshold", "best-F1 threshold", "The threshold that gives best F1 on this data (`aedetect calibrate` sets it)."),
    ("pixel_auroc", "pixel AUROC",
     "AUROC over all pixels against the ground-truth masks: how well the heat map ranks defect pixels above normal ones."),
    ("aupro", "AUPRO (FPR <= 0.3)",
     "Area under the per-region overlap curve up to 30 % pixel false positives, normalised to 1: each defect region counts equally, however small."),
    ("pixel_threshold", "pixel threshold", "Heat-map value above which a pixel is drawn as predicted defect (red contour)."),
)

_STYLE = """body{font-family:sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 10px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.why{color:#555;font-size:90%}
.plots img{height:300px;margin-right:1em;border:1px solid #ddd}
.gallery{display:flex;flex-wrap:wrap;gap:14px}
figure.card{margin:0;padding:6px;border:1px solid #ddd;border-left:6px solid #7a7;background:#fafafa}
figure.card.flagged{border-left-color:#d33}figure.card img{max-width:100%;image-rendering:pixelated;display:block}
figcaption{font-size:90%;margin-top:4px}code{background:#f0f0f0;padding:0 3px}.muted{color:#777}"""


def _e(x: object) -> str:
    """HTML-escaped text; a file name that is not valid UTF-8 (surrogate escapes) is shown with
    its odd bytes replaced rather than crashing the page."""
    return html.escape(str(x).encode("utf-8", "replace").decode("utf-8"), quote=True)


def _num(v: object, fmt: str = ".4f") -> str:
    return "n/a" if v is None else format(v, fmt) if isinstance(v, float) else str(v)


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = [f"<tr data-metric='{k}'><td>{_e(name)}</td><td class='num'>{_num(metrics[k])}</td>"
            f"<td class='why'>{_e(why)}</td></tr>" for k, name, why in METRIC_MEANINGS if k in metrics]
    return "<table id='metrics'><tr><th>metric</th><th>value</th><th>what it means</th></tr>" + "".join(rows) + "</table>"


def _kind_table(rows: list[KindRow]) -> str:
    out = ["<table id='kinds'><tr><th>kind</th><th>label</th><th>images</th><th>flagged</th>"
           "<th>image AUROC vs normals</th><th>pixel AUROC vs normals</th></tr>"]
    for r in rows:
        out.append(f"<tr data-kind='{_e(r.kind)}'><td>{_e(r.kind)}</td><td>{'anomalous' if r.label else 'normal'}</td>"
                   f"<td class='num'>{r.n_images}</td><td class='num'>{r.n_flagged}</td>"
                   f"<td class='num'>{_num(r.image_auroc)}</td><td class='num'>{_num(r.pixel_auroc)}</td></tr>")
    return "".join(out) + "</table>"


def _card(it: GalleryItem, threshold: float) -> str:
    verdict = "flagged" if it.flag else "not flagged"
    label = "" if it.label is None else f" · label: {'anomalous' if it.label else 'normal'}"
    kind = f" · kind: {_e(it.kind)}" if it.kind else ""
    img = (f"<a href='{_e(it.panel)}'><img src='{_e(it.panel)}' alt='{_e(it.path)}'></a>"
           if it.panel else "<p class='muted'>(no panel: --no-heatmaps)</p>")
    return (f"<figure class='card{' flagged' if it.flag else ''}' data-score='{it.score:.8g}' data-path='{_e(it.path)}'>"
            f"{img}<figcaption><code>{_e(it.path)}</code><br>score <b>{it.score:.5g}</b> "
            f"{'&gt;' if it.flag else '&le;'} threshold {threshold:.5g}: <b>{verdict}</b>{label}{kind}</figcaption></figure>")


def _gallery(gid: str, title: str, note: str, items: list[GalleryItem], threshold: float) -> str:
    cards = "".join(_card(it, threshold) for it in items)
    return f"<h2>{_e(title)}</h2><p class='muted'>{_e(note)}</p><div class='gallery' id='{gid}'>{cards}</div>"


def write_report(path: Path, *, summary: dict[str, Any], metrics: dict[str, Any], plots: list[str],
                 kinds: list[KindRow], top: list[GalleryItem], top_normals: list[GalleryItem],
                 threshold: float, skipped: list[tuple[str, str]]) -> Path:
    """Write the page. ``summary``: the run's facts (shown first, in order); ``plots``: PNG
    names in the run folder; ``top`` / ``top_normals``: the galleries, highest score first."""
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>aedetect score report</title>",
             f"<style>{_STYLE}</style></head><body><h1>aedetect score report</h1><table id='summary'>"]
    parts += [f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in summary.items()]
    parts.append("</table>")
    if metrics:
        parts.append("<h2>Metrics</h2>" + _metrics_table(metrics))
    if plots:
        parts.append("<h2>Curves and scores</h2><div class='plots'>"
                     + "".join(f"<img src='{_e(p)}' alt='{_e(p)}'>" for p in plots) + "</div>")
    if kinds:
        parts.append("<h2>Per defect kind</h2>" + _kind_table(kinds))
    legend = ("Each panel: input | reconstruction | error map (colour bar below it) | overlay "
              "(red: predicted defect contour, green: ground truth).")
    parts.append(_gallery("gallery-top", f"Most anomalous ({len(top)})", legend, top, threshold))
    if top_normals:
        parts.append(_gallery("gallery-normals", f"Highest-scored normal images ({len(top_normals)})",
                              "Normal images the model finds least normal: the first place to look when "
                              "the threshold flags too much (or too little).", top_normals, threshold))
    if skipped:
        parts.append(f"<h2>Unreadable files ({len(skipped)})</h2><ul id='skipped'>"
                     + "".join(f"<li><code>{_e(p)}</code>: {_e(r)}</li>" for p, r in skipped) + "</ul>")
    parts.append("</body></html>")
    write_text_atomic(path, "\n".join(parts))
    return path
