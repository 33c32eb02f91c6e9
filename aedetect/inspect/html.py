"""index.html of an inspect folder: plain HTML with relative links, so it opens offline."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from aedetect.util.fsutil import write_text_atomic
from aedetect.util.text import printable

_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}
.skip{color:#a33}table{border-collapse:collapse}td{padding:2px 8px;border-bottom:1px solid #eee}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}"""


def write_index(path: Path, pictures: list[Any], info: dict[str, Any], config: dict[str, Any]) -> Path:
    """One section per picture (or the line saying why it is missing), then the config."""
    def e(s: object) -> str:  # a non-UTF-8 file name as \xNN, then HTML-escaped
        return html.escape(printable(s))

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>aedetect inspect</title>"
             f"<style>{_STYLE}</style></head><body><h1>aedetect inspect</h1><table>"]
    for k, v in info.items():
        parts.append(f"<tr><td>{e(str(k))}</td><td>{e(f'{v:,}' if isinstance(v, int) else str(v))}</td></tr>")
    parts.append("</table><ul>")
    for p in pictures:
        parts.append(f"<li><a href='#{e(p.name)}'>{e(p.title)}</a>{' (skipped)' if p.skipped else ''}</li>")
    parts.append("</ul>")
    for p in pictures:
        parts.append(f"<h2 id='{e(p.name)}'>{e(p.title)}</h2><p>{e(p.caption)}</p>")
        if p.file:
            parts.append(f"<p><a href='{e(p.file)}'><img src='{e(p.file)}' alt='{e(p.title)}'></a></p>")
        else:
            parts.append(f"<p class='skip'>{e(p.skipped or 'not drawn')}</p>")
    parts.append(f"<h2>Config</h2><pre>{e(json.dumps(config, indent=2))}</pre></body></html>")
    write_text_atomic(path, "\n".join(parts))
    return path
