"""The one way aedetect makes a file name: bounded in bytes, unique within a run, stable.

Two kinds of name are made here and nowhere else:

* an output named after an input (a heat map, a gallery panel): each path part with the
  characters a file system or a URL may choke on replaced by ``_``. Replacing is lossy
  (``n00 x.png`` and ``n00_x.png`` would meet), so a part that had to change, or that is longer
  than :data:`MAX_PART_BYTES` (a legal 250-byte name plus ``.png`` is not legal), carries
  ``~`` and eight hex digits of the SHA-256 of the original part. The name depends on the
  input's name only (the same in every run and every shard of a run); :class:`RunNames` adds
  the guard that no two inputs of one run get one name (case-insensitive file systems included).
* a temporary sibling of an output being written (:func:`temp_name`): ``.<stem>.aedetect-tmp.
  <pid>.<random><tag>.tmp<suffix>``, at most 255 bytes whatever the output's name, where
  ``tag`` is a digest of the rest of the name: a clean-up (:func:`parse_temp_name`) matches
  only names that aedetect wrote, never a user's ``.thesis.abcd1234.tmp``, and only with the
  pid of the run that wrote it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import PurePosixPath

MAX_NAME_BYTES = 255  # NAME_MAX of ext4, XFS, btrfs, APFS, NTFS (in UTF-16 units: fewer)
MAX_PART_BYTES = 200  # an output part: room left for a suffix a viewer or a copy tool adds
MAX_SUFFIX_BYTES = 16  # a longer "suffix" is part of the name, not a format
_UNSAFE = re.compile(r"[^\w.-]+")
TEMP_MARK = "aedetect-tmp"
_TEMP = re.compile(r"^\.(?P<stem>.*)\." + TEMP_MARK + r"\.(?P<pid>\d{1,10})\.(?P<rand>[0-9a-f]{8})"
                   r"(?P<tag>[0-9a-f]{8})\.tmp(?P<suffix>\.[^.]*)?$")


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def truncate_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits ``limit`` bytes, never cutting a
    character in two (an undecodable byte, held as a surrogate escape, counts as one)."""
    out, used = [], 0
    for ch in text:
        n = len(ch.encode("utf-8", "surrogateescape"))
        if used + n > limit:
            break
        out.append(ch)
        used += n
    return "".join(out)


def _split_suffix(name: str) -> tuple[str, str]:
    p = PurePosixPath(name)
    suffix = p.suffix if len(p.suffix.encode("utf-8", "surrogateescape")) <= MAX_SUFFIX_BYTES else ""
    return (name[: len(name) - len(suffix)] if suffix else name), suffix


def safe_part(part: str, limit: int = MAX_PART_BYTES) -> str:
    """One path part as an output name part: unsafe characters as ``_``; if anything changed
    or the part is longer than ``limit`` bytes, ``~`` + 8 hex digits of the original's digest
    before the suffix (so two parts that differ stay different), cut to ``limit`` bytes."""
    clean = _UNSAFE.sub("_", part) or "_"
    if clean in (".", ".."):
        clean = "_" * len(clean)
    if clean == part and len(part.encode("utf-8")) <= limit:
        return part
    stem, suffix = _split_suffix(clean)
    tag = "~" + _digest(part)
    return truncate_bytes(stem, limit - len(tag) - len(suffix.encode("utf-8"))) + tag + suffix


def output_name(parts: tuple[str, ...] | list[str], suffix: str = "") -> str:
    """A relative output path (``/``-joined) for an input's relative path ``parts``, with
    ``suffix`` put on unless the last part already ends with it (case-insensitive)."""
    if not parts:
        raise ValueError("an output name needs at least one part")
    last = parts[-1] if not suffix or parts[-1].lower().endswith(suffix.lower()) else parts[-1] + suffix
    return "/".join([safe_part(p) for p in parts[:-1]] + [safe_part(last)])


class RunNames:
    """The output names given out in one run: a name that is already taken (another input's,
    compared case-insensitively, as macOS and Windows do) gets the digest of its source's
    whole path, so two inputs never share one heat map."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}

    def claim(self, name: str, source: str) -> str:
        """``name`` for ``source``, or a variant of it that no other source of the run holds."""
        candidate = name
        for attempt in range(100):
            key = candidate.casefold()
            owner = self._owner.get(key)
            if owner is None or owner == source:
                self._owner[key] = source
                return candidate
            head, _, last = candidate.rpartition("/")
            stem, suffix = _split_suffix(last)
            tag = "~" + _digest(f"{source}\0{attempt}")
            last = truncate_bytes(stem, MAX_PART_BYTES - len(tag) - len(suffix.encode("utf-8"))) + tag + suffix
            candidate = f"{head}/{last}" if head else last
        raise RuntimeError(f"no free output name for {source!r}")  # 100 digest collisions: not reachable


def temp_name(final_name: str, pid: int, rand: str | None = None) -> str:
    """The temporary sibling's name for an output called ``final_name``, written by process
    ``pid``: at most :data:`MAX_NAME_BYTES` bytes, the output's suffix kept (a reader picks the
    decoder by it), and a tag that only this function computes (see :func:`parse_temp_name`)."""
    rand = rand or secrets.token_hex(4)
    stem, suffix = _split_suffix(final_name)
    stem = stem.lstrip(".") or "_"
    fixed = len(f"..{TEMP_MARK}.{pid}.{rand}{'0' * 8}.tmp{suffix}".encode("utf-8", "surrogateescape"))
    stem = truncate_bytes(stem, MAX_NAME_BYTES - fixed)
    tag = _digest(f"{TEMP_MARK}\0{stem}\0{pid}\0{rand}\0{suffix}")
    return f".{stem}.{TEMP_MARK}.{pid}.{rand}{tag}.tmp{suffix}"


def parse_temp_name(name: str) -> int | None:
    """The writer's pid if ``name`` is a temporary file that :func:`temp_name` made, else None
    (a user's file that merely looks like one: its tag does not match)."""
    m = _TEMP.match(name)
    if m is None:
        return None
    suffix = m.group("suffix") or ""
    expected = _digest(f"{TEMP_MARK}\0{m.group('stem')}\0{m.group('pid')}\0{m.group('rand')}\0{suffix}")
    return int(m.group("pid")) if m.group("tag") == expected else None
