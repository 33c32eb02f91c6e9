"""The package layout's import rule (docs/architecture.md), checked on the source itself.

    errors, version  <-  util  <-  data  <-  core  <-  anomaly | denoise | inspect  <-  cli, demo

A module may import its own layer and the layers to its left, never to its right, and the
three rooms of the fourth layer never import each other. Inside ``core`` and ``anomaly`` the
rooms are ranked the same way (:data:`ROOMS`): a module imports its own room and lower ranks
only. Imports inside functions count (they are still dependencies); imports under
``if TYPE_CHECKING:`` do not (they never run). And no import circle, at any depth.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "aedetect"

BASE = {"errors", "version"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(), "version": set(),
    "util": BASE | {"util"},
    "data": BASE | {"util", "data"},
    "core": BASE | {"util", "data", "core"},
    "anomaly": BASE | {"util", "data", "core", "anomaly"},
    "denoise": BASE | {"util", "data", "core", "denoise"},
    "inspect": BASE | {"util", "data", "core", "inspect"},
}
TOP = {"cli", "demo", "__init__", "__main__"}  # the front door: may import anything

# The rooms inside a layer, by rank: a module may import its own room and lower ranks, never a
# higher rank or another room of its own rank. "" is the layer's own top-level modules
# (core: config, presets, heads, checks, pretrained, plots) and its __init__.
ROOMS: dict[str, dict[str, int]] = {
    "core": {"": 0, "model": 1, "modelfile": 2, "training": 3},
    "anomaly": {"": 0, "settings": 0, "maps": 1, "evaluate": 1, "calibration": 2, "selection": 2,
                "head": 3, "detector": 4, "jobs": 5},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported aedetect module) for every import that can run."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names if a.name.split(".")[0] == "aedetect")
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module \
                    and child.module.split(".")[0] == "aedetect":
                found.append((child.lineno, child.module))
                found.extend((child.lineno, f"{child.module}.{a.name}") for a in child.names)
            visit(child)

    visit(tree)
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The aedetect module an import names (``from a.b import c`` names a.b.c if it is a module)."""
    return name if name in modules else None


def test_every_import_points_down_the_layers() -> None:
    modules = _modules()
    bad = []
    for mod, path in modules.items():
        src = _layer(mod)
        if src in TOP:
            continue
        assert src in ALLOWED, f"{path}: {src!r} is not a layer in docs/architecture.md; add it to the rule"
        for line, name in _imports(ast.parse(path.read_text()), module_level_only=False):
            target = _resolve(name, modules) or name.rsplit(".", 1)[0]
            if target == "aedetect":
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports the package root (the public API)")
                continue
            dst = _layer(target)
            if dst not in ALLOWED[src]:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} ({src}) imports {target} ({dst})")
    assert not bad, "imports against the layer rule:\n" + "\n".join(sorted(set(bad)))


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Module -> the aedetect modules it imports, late (function-level) imports included and
    ``if TYPE_CHECKING:`` ones left out; a package's own ``__init__`` is not an edge."""
    modules = _modules() if modules is None else modules
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        edges = set()
        for _, name in _imports(ast.parse(path.read_text())):
            target = _resolve(name, modules) or _resolve(name.rsplit(".", 1)[0], modules)
            if target and target != mod and not mod.startswith(target + "."):  # a parent package is not a circle
                edges.add(target)
        graph[mod] = edges
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, one per group of modules that reach each other (Tarjan's strongly
    connected components), each named as a path that starts and ends at the same module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_a_circle(graph, set(g)) for g in groups]


def _a_circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """One circle through the first module of ``group`` (a breadth-first path back to it)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for m in frontier:
            for n in sorted(graph[m] & group):
                if n == start:
                    path = [m]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if n not in came_from:
                    came_from[n] = m
                    nxt.append(n)
        frontier = nxt
    raise AssertionError(f"no circle in {sorted(group)}")


def _room(module: str) -> str:
    """The room of a module inside its layer: a subpackage, a top-level module ranked on its
    own, or "" (the layer's other top-level modules)."""
    parts = module.split(".")
    rooms = ROOMS[parts[1]]
    return parts[2] if len(parts) > 2 and parts[2] in rooms else ""


def test_every_import_points_down_the_rooms() -> None:
    """docs/architecture.md: core is config <- model <- modelfile <- training; anomaly is
    settings <- maps, evaluate <- calibration, selection <- head <- detector <- jobs."""
    modules = _modules()
    bad, unranked = [], []
    for mod, deps in import_graph(modules).items():
        layer = _layer(mod)
        if layer not in ROOMS:
            continue
        parts = mod.split(".")
        if len(parts) > 2 and parts[2] not in ROOMS[layer] and modules[mod].name == "__init__.py":
            unranked.append(f"{mod}: a room of {layer} with no rank in ROOMS (tests/test_layout.py)")
        src = _room(mod)
        for dep in deps:
            if _layer(dep) != layer or _room(dep) == src:
                continue
            dst = _room(dep)
            if ROOMS[layer][dst] >= ROOMS[layer][src]:
                bad.append(f"{modules[mod].relative_to(PKG.parent)} ({layer}/{src or '.'}, rank "
                           f"{ROOMS[layer][src]}) imports {dep} ({layer}/{dst or '.'}, rank {ROOMS[layer][dst]})")
    assert not unranked, "\n".join(unranked)
    assert not bad, "imports against the room order:\n" + "\n".join(sorted(bad))


def test_no_import_circle() -> None:
    """No module imports one that imports it back, at any depth; late imports count."""
    circles = import_circles(import_graph())
    assert not circles, f"{len(circles)} import circle(s):\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_circle_check_names_a_late_import_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_circles(graph) == [["a", "b", "c", "a"]]
    tree = ast.parse("import os\ndef f():\n    from aedetect.core.config import Config\n")
    assert [n for _, n in _imports(tree)] == ["aedetect.core.config", "aedetect.core.config.Config"]


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a core module importing a head is reported."""
    tree = ast.parse("from aedetect.anomaly.detector import AnomalyDetector\n"
                     "if TYPE_CHECKING:\n    from aedetect.cli.app import app\n"
                     "def f():\n    import aedetect.inspect.report\n")
    names = [n for _, n in _imports(tree)]
    assert "aedetect.anomaly.detector" in names and "aedetect.inspect.report" in names
    assert not any(n.startswith("aedetect.cli") for n in names)
    assert _layer("aedetect.anomaly.detector") not in ALLOWED["core"]


def test_public_api_and_config_import_without_torch() -> None:
    code = ("import sys, aedetect; from aedetect.core.config import Config; from aedetect.core.presets import build_config;"
            "assert aedetect.__version__; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_names_resolve() -> None:
    import aedetect

    for name in aedetect.__all__:
        assert getattr(aedetect, name) is not None
    with pytest.raises(AttributeError):
        aedetect.NotAName  # noqa: B018
