"""Kong is read one way: through ``KongAdmin`` and the one pagination helper.

A second copy of pagination is a second place to get Kong's quirks wrong (nested lists cap
``size`` and drop it from ``next``), and a module that calls the wire itself bypasses the
client's retries, Konnect handling and error mapping.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sidecar

PACKAGE = Path(sidecar.__file__).parent
PAGINATION = {PACKAGE / "kong" / "pages.py", PACKAGE / "kong" / "parse.py"}


def _modules() -> list[tuple[Path, ast.AST]]:
    return [
        (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "kong_local" not in path.parts and "spinnaker" not in path.parts
    ]


def test_only_the_pagination_helper_reads_an_offset() -> None:
    readers = [
        str(path.relative_to(PACKAGE))
        for path, tree in _modules()
        if path not in PAGINATION
        and any(isinstance(n, ast.Constant) and n.value == "offset" for n in ast.walk(tree))
    ]
    assert readers == []


def test_propagation_reads_kong_through_kong_admin() -> None:
    tree = ast.parse((PACKAGE / "propagation.py").read_text())
    imported = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert "sidecar.kong.wire" not in imported
    assert "sidecar.kong.client.KongAdmin" in imported
