"""The API's JSON Schemas are readable where they are defined (issue 17 item 4): each module
that defines them does so with literals and small pure helpers only, never by changing a schema
after its definition (``SET_SPLIT["properties"]["lease"] = …``, a loop adding ``wait`` to
three bodies), so what a reader sees at a schema's definition is the whole schema."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest

import sidecar.api
from sidecar.api.openapi import SCHEMAS, document

API = Path(sidecar.api.__file__).parent
SCHEMA_MODULES = sorted(
    [API / "schemas.py", API / "openapi.py", API / "operations.py", *API.glob("*_schema.py")]
)
# what a module may do at its top level: define, import, document
DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)


def changes_after_definition(source: str) -> list[str]:
    """Top-level statements that are not a definition: loops, assignments into a subscript or
    attribute, bare calls (``SCHEMA.update(…)``), augmented assignments."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, DEFINITIONS):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            continue
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return found


@pytest.mark.parametrize("module", SCHEMA_MODULES, ids=lambda p: p.name)
def test_schema_modules_should_define_each_schema_once(module: Path) -> None:
    assert changes_after_definition(module.read_text(encoding="utf-8")) == []


def test_the_check_should_find_a_schema_changed_after_its_definition() -> None:
    source = (
        'BODY = {"properties": {}}\n'
        'BODY["properties"]["wait"] = {}\n'
        "for _body in (BODY,):\n"
        '    _body["properties"]["x"] = {}\n'
        "BODY.update(more=1)\n"
    )
    assert len(changes_after_definition(source)) == 3


def test_building_the_document_should_change_no_schema() -> None:
    before = copy.deepcopy(SCHEMAS)
    first = document()
    assert before == SCHEMAS
    assert document() == first
