"""The README runs as written: its Python block, and every CLI example that needs no external
data, are run here (in a scratch folder), so the README cannot rot.

A CLI example is a line of an indented block that starts with ``aedetect ``. It is run unless
it names data the test cannot have (an upper-case placeholder such as DATA or MODEL, a
torchvision dataset, a path outside runs/ that does not exist in the repository); the test
lists what it skipped and why, and fails if fewer than the known runnable examples ran. A
trailing ``# comment`` with numbers (``# 93,248 encoder + 166,467 decoder parameters``) must
be borne out by the output.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
EXTERNAL = {"mnist", "fashion-mnist", "cifar10"}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]+$")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def cli_examples(text: str) -> list[tuple[str, str]]:
    """(command, trailing comment) for every ``aedetect ...`` line of an indented block."""
    out = []
    for line in text.splitlines():
        if not line.startswith("    aedetect "):
            continue
        command, _, comment = line.strip().partition("  #")
        out.append((command.strip(), comment.strip()))
    return out


def why_not_runnable(command: str) -> str | None:
    """None if the example can run on bundled data, else the reason it cannot."""
    tokens = shlex.split(command)[1:]
    for t in tokens:
        bare = t.strip("[]|,")
        if PLACEHOLDER.match(bare) or "|" in t or t.startswith("[") or bare in ("...", "…"):
            return f"placeholder {t!r}"
        if bare.lower() in EXTERNAL:
            return f"needs the {bare} download"
        if "/" in bare and not bare.startswith(("runs/", "-")) and not (REPO / bare).exists():
            return f"needs {bare!r}"
        if bare.startswith("~"):
            return f"needs {bare!r}"
    return None


def run_readme(text: str, workdir: Path, timeout: float = 500) -> list[str]:
    """Run the README's Python blocks and runnable CLI examples in ``workdir``; the list of
    commands run. Raises AssertionError naming the first example that fails."""
    (workdir / "recipes").symlink_to(REPO / "recipes")
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    ran = []
    for block in python_blocks(text):
        p = subprocess.run([sys.executable, "-c", block], cwd=workdir, capture_output=True, text=True,
                           timeout=timeout, env=env)
        assert p.returncode == 0, f"README Python block failed:\n{p.stderr[-3000:]}"
        ran.append("python block")
    aedetect = shutil.which("aedetect") or "aedetect"
    for command, comment in cli_examples(text):
        if why_not_runnable(command):
            continue
        argv = [aedetect, *shlex.split(command)[1:]]
        p = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
        assert p.returncode == 0, f"README example failed: {command}\n{p.stdout[-1500:]}{p.stderr[-1500:]}"
        for number in re.findall(r"\d[\d,]*\d|\d", comment):
            assert number in p.stdout, f"README example {command!r}: {number} (from its comment) not in the output"
        ran.append(command)
    return ran


def test_every_readme_example_runs(tmp_path: Path) -> None:
    text = README.read_text()
    ran = run_readme(text, tmp_path)
    skipped = {c: why_not_runnable(c) for c, _ in cli_examples(text) if why_not_runnable(c)}
    print("skipped:", *(f"{c}: {w}" for c, w in skipped.items()), sep="\n  ")
    assert "python block" in ran
    assert any(c.startswith("aedetect info keras-dogs") for c in ran)
    assert any(c.startswith("aedetect fit digits") for c in ran)
    assert any(c.startswith("aedetect score") and "report" not in c for c in ran)
    assert (tmp_path / "runs" / "digits0-score" / "report.html").is_file()


def test_a_broken_readme_example_fails(tmp_path: Path) -> None:
    """The harness is not vacuous: a typo in an example, a wrong figure in a comment, or a
    broken Python block each fail it."""
    cases = {
        "option typo": "    aedetect info keras-dogs --jsn\n",
        "wrong figure": "    aedetect info keras-dogs        # 93,249 encoder parameters\n",
        "python": "```python\nimport aedetectt\n```\n",
    }
    for name, text in cases.items():
        work = tmp_path / name.replace(" ", "-")
        work.mkdir()
        with pytest.raises(AssertionError):
            run_readme(text, work, timeout=120)
