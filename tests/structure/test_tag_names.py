"""Kong tag names are spelled once, in ``sidecar/core/tags.py``.

The tags are the sidecar's only storage in Kong, so two spellings of one tag would be two
storage formats. Every string constant in the package (docstrings aside) that is one of the
tags, or starts with one of the ``…=`` prefixes, must be the one in ``core/tags.py``. The
local Kong (a model of Kong, which knows nothing of our tags) is not looked at.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sidecar
from sidecar.core import tags

PACKAGE = Path(sidecar.__file__).parent
HOME = PACKAGE / "core" / "tags.py"
NAMES = {value for name, value in vars(tags).items() if name.isupper() and isinstance(value, str)}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            ids.add(id(first.value))
    return ids


def spelled_outside(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == HOME or "kong_local" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in skip:
                continue
            text = node.value
            if text in NAMES or any(n.endswith("=") and text.startswith(n) for n in NAMES):
                found.append(f"{path.relative_to(package)}:{node.lineno}: {text!r}")
    return found


def test_every_tag_name_is_spelled_only_in_core_tags() -> None:
    assert spelled_outside() == []


def test_the_check_sees_a_tag_spelled_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text('"""Doc: managed-by=kong-canary."""\nTAG = "variant="\n')
    assert spelled_outside(tmp_path) == ["mod.py:2: 'variant='"]
