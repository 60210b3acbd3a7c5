"""The package's parts depend on each other one way only.

Imports are read from the source (module level and inside functions alike: a lazy import is a
dependency too) and folded to the package's parts (``sidecar.kong``, ``sidecar.app``, ...).
A cycle between parts means neither can be changed or tested without the other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import sidecar

PACKAGE = Path(sidecar.__file__).parent


def _part(module: str) -> str:
    """``sidecar.kong.client`` -> ``sidecar.kong``; ``sidecar.app`` stays itself."""
    return ".".join(module.split(".")[:2])


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sidecar":
                names |= {f"sidecar.{alias.name}" for alias in node.names}
            elif node.module.startswith("sidecar."):
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("sidecar.")}
    return names


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("sidecar", *path.relative_to(PACKAGE).with_suffix("").parts))
        source = _part(module)
        for name in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            if _part(name) != source:
                graph[source].add(_part(name))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every pair of parts that reach each other, as a path from one back to itself."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], {start}
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_package_parts_should_not_import_each_other_in_a_cycle() -> None:
    assert cycles(part_graph()) == []


def test_cycle_finder_should_report_a_cycle_when_two_parts_import_each_other() -> None:
    """Guards the test above: the finder sees a cycle through a third part."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert ["a", "b", "c", "a"] in cycles(graph)
    assert all(path[0] != "d" for path in cycles(graph))


def test_only_the_process_entry_points_should_import_the_flask_wiring() -> None:
    """``sidecar.app`` wires everything; a library module that imports it closes a loop."""
    importers = {part for part, deps in part_graph().items() if "sidecar.app" in deps}
    assert importers <= {"sidecar.serve"}


def test_the_variants_should_be_defined_in_core_split_only() -> None:
    """One tuple of variant names (``sidecar.core.split.VARIANTS``), imported where needed."""
    defining = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            if any(isinstance(t, ast.Name) and t.id == "VARIANTS" for t in targets):
                defining.add(str(path.relative_to(PACKAGE)))
    assert defining == {"core/split.py"}
