"""Every library the package imports is a declared dependency, in a range the install meets.

A dependency that only arrives through another one (werkzeug through Flask) can change under
us when that other one moves; the package's own use of it must be declared and pinned.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

from packaging.requirements import Requirement

import sidecar

PACKAGE = Path(sidecar.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = (Requirement(line) for line in project["dependencies"])
    return {_normal(r.name): r for r in requirements}


def imported_distributions() -> dict[str, set[str]]:
    """distribution -> the package's files importing it (third-party imports only)."""
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            elif isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top == "sidecar":
                    continue
                for dist in owners.get(top, [top]):
                    found.setdefault(_normal(dist), set()).add(str(path.relative_to(PACKAGE)))
    return found


def test_every_imported_library_should_be_a_declared_dependency() -> None:
    undeclared = {d: files for d, files in imported_distributions().items() if d not in declared()}
    assert undeclared == {}


def test_installed_libraries_should_be_in_the_declared_ranges() -> None:
    outside = {
        name: version(name)
        for name, requirement in declared().items()
        if not requirement.specifier.contains(version(name), prereleases=True)
    }
    assert outside == {}


def test_werkzeug_should_be_pinned_below_its_next_major_version() -> None:
    """kong_local relies on the development server's internals: a new major may drop them."""
    assert not declared()["werkzeug"].specifier.contains("4.0")
