"""Start-up cost of each command: wall time, CPU time and peak memory of a fresh process.

    python bench/startup.py [--repeats 5] [--tree before=/tmp/old-checkout ...]

Each case runs ``--repeats`` times as its own Python process calling ``aedetect.cli.main``
(the console script's own work, without the shell), cases and trees interleaved so a load
change hits all alike; the median of each figure is printed, one Markdown row per case and
tree, plus whether torch was imported and the exit code. ``--tree LABEL=DIR`` runs the code of
another source tree (put first on PYTHONPATH; e.g. ``git archive 342e4f7 | tar -x -C DIR``)
beside this one, for a before/after table from one run. The model file is the legacy
anomaly fixture in tests/fixtures, so no training is needed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "fixtures" / "legacy" / "anomaly-digits.safetensors"

# name -> argv after "aedetect"
CASES: dict[str, list[str]] = {
    "aedetect --help": ["--help"],
    "aedetect score --help": ["score", "--help"],
    "aedetect info MODEL": ["info", str(MODEL)],
    "aedetect info MODEL --json": ["info", str(MODEL), "--json"],
    "usage error (aedetect score, no args)": ["score"],
    "usage error (score --batch-size 0)": ["score", str(MODEL), "DATA", "--batch-size", "0"],
    "aedetect info small (a preset)": ["info", "small"],
}

# Runs the CLI, then reports whether torch got imported and the peak RSS, on stderr's last line.
PROBE = (
    "import sys, resource\n"
    "from aedetect.cli import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "else:\n"
    "    code = 0\n"
    "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(f'@@probe torch={\"torch\" in sys.modules} rss_kb={rss} code={code}', file=sys.stderr)\n"
)


def run_once(argv: list[str], cwd: Path, tree: str | None) -> tuple[float, float, int, bool, str]:
    """(wall s, cpu s of the child, peak RSS kB, torch imported, exit code)."""
    env = {**os.environ, "COLUMNS": "100"}
    if tree:
        env["PYTHONPATH"] = tree
    before = os.times()
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    line = [x for x in p.stderr.splitlines() if x.startswith("@@probe")][-1]
    fields = dict(kv.split("=") for kv in line.split()[1:])
    return wall, cpu, int(fields["rss_kb"]), fields["torch"] == "True", fields["code"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tree", action="append", default=[], help="LABEL=DIR: also time the code in DIR")
    args = ap.parse_args()
    trees: list[tuple[str, str | None]] = [tuple(t.split("=", 1)) for t in args.tree]  # type: ignore[misc]
    trees.append(("this tree", None))
    results: dict[tuple[str, str], list[tuple[float, float, int, bool, str]]] = {}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(args.repeats):
            for name, argv in CASES.items():
                for label, tree in trees:
                    results.setdefault((name, label), []).append(run_once(argv, Path(cwd), tree))
    load = os.getloadavg()
    print(f"median of {args.repeats}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print("| command | tree | wall s | CPU s | peak RSS MB | torch imported | exit |")
    print("|---|---|---|---|---|---|---|")
    for (name, label), rs in results.items():
        wall = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        rss = statistics.median(r[2] for r in rs) / 1024
        print(f"| `{name}` | {label} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {'yes' if rs[0][3] else 'no'} | {rs[0][4]} |")


if __name__ == "__main__":
    main()
