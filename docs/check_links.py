"""Print every relative Markdown link in README.md and docs/**/*.md whose target does not exist,
whose #anchor names no heading of a Markdown target (GitHub's slugs), or that points into a
git-ignored folder (bench/out/). Exit 1 if any.

    python docs/check_links.py
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IGNORED = ("bench/out",)


def slugs(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings (duplicates numbered -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for line in text.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def main() -> int:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for m in LINK.finditer(text):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            rel = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
            bad_anchor = (anchor and resolved.suffix == ".md" and resolved.is_file()
                          and anchor not in slugs(resolved))
            if not resolved.exists() or rel.startswith(IGNORED) or bad_anchor:
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    print("\n".join(broken) if broken else f"0 broken links in {len(pages)} pages")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
