"""Walking an image folder: every image file below it, and a warning for everything skipped.

Nothing is skipped silently: a broken symlink, a symlink loop, a folder that cannot be read
and a file in an image format aedetect does not read (``.gif``, ``.heic``, ...) each cost one
warning line naming the path, and one summary line counts them by reason. Symlinks to files
and folders are followed (a dataset linked into place is read), each folder once. Hidden files
(``.name``, among them the temporary files of an interrupted atomic write) are not images and
are passed over without a word.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aedetect.data.io import is_image_file

log = logging.getLogger("aedetect")

# Image formats a user may well drop into a folder that aedetect does not decode.
UNSUPPORTED_IMAGES = (".gif", ".heic", ".heif", ".avif", ".jp2", ".ico", ".psd", ".svg", ".raw", ".dng")


@dataclass
class Scan:
    """The images found (sorted) and what was skipped, as (path, reason)."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.skipped.append((str(path), reason))
        log.warning("skipped %s: %s%s", path, reason, f" ({detail})" if detail else "")


def scan_images(root: str | Path) -> Scan:
    """Every image file below ``root`` (or ``root`` itself if it is a file), sorted."""
    r = Path(root)
    scan = Scan()
    if r.is_file():
        scan.files = [r]
        return scan
    seen: set[tuple[int, int]] = set()
    stack = [r]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                scan.skip(folder, "symlink loop", "a folder already read")
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError as e:
            scan.skip(folder, "folder cannot be read", e.strerror or str(e))
            continue
        for entry in entries:
            p = Path(entry.path)
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
                is_file = entry.is_file()
            except OSError as e:  # ELOOP on a link to itself, EACCES
                scan.skip(p, "symlink loop" if getattr(e, "errno", None) == 40 else "cannot be read", str(e))
                continue
            if entry.is_symlink() and not (is_dir or is_file):
                scan.skip(p, "broken symlink", f"-> {os.readlink(p)}")
            elif is_dir:
                stack.append(p)
            elif is_file and is_image_file(p):
                scan.files.append(p)
            elif is_file and p.suffix.lower() in UNSUPPORTED_IMAGES:
                scan.skip(p, f"unsupported image format ({p.suffix.lower()})")
    scan.files.sort()
    if scan.skipped:
        counts = Counter(reason for _, reason in scan.skipped)
        log.warning("%s: %d entries skipped (%s)", r, len(scan.skipped),
                    ", ".join(f"{n} {why}" for why, n in sorted(counts.items())))
    return scan
