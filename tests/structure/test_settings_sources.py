"""``sidecar/settings.py`` is the one source of settings: the README's table lists exactly its
fields (with its literal defaults), and nothing else in the package reads the environment
except the two variables the README names as read outside the settings, for its reasons."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import sidecar
from sidecar import settings as app_settings
from sidecar.serve import SidecarApplication

PACKAGE = Path(sidecar.__file__).parent
README = PACKAGE.parent / "README.md"
# Environment variables read outside settings.py, each for a reason the README gives.
READ_OUTSIDE_SETTINGS = {
    "PROMETHEUS_MULTIPROC_DIR": {"metrics.py", "serve.py"},  # read by prometheus_client itself
    # The operator CLI is a client of the sidecar's API, not the sidecar: its connection and
    # the audit context's user come from its own options and variables (README, Operator tools)
    "KONG_CANARY_URL": {"client/commands.py"},
    "KONG_CANARY_TOKEN": {"client/commands.py"},
    "KONG_CANARY_TOKEN_FILE": {"client/commands.py"},
    "KONG_CANARY_USER": {"client/connection.py"},
    "KONG_CANARY_KAYENTA_LIBRARY": {"kayenta/library.py"},  # the image's data path
}


def readme_rows() -> list[tuple[list[str], str]]:
    """(names, default cell) of every row of the table under '## Configuration'."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) >= 3:
            rows.append((re.findall(r"`([A-Z0-9_]+)`", cells[0]), cells[1]))
    return rows


def setting_keys() -> set[str]:
    return {key.upper() for key in (*app_settings._FIELDS, *app_settings._TOKEN_KEYS)}


def test_readme_table_should_list_every_setting_once_and_nothing_else() -> None:
    listed = [name for names, _ in readme_rows() for name in names]
    assert sorted(listed) == sorted(setting_keys())


def default_of(name: str) -> Any:
    section, attribute, _ = app_settings._FIELDS[name.lower()]
    holder = app_settings.KongSettings() if section == "kong" else app_settings.Settings()
    return getattr(holder, attribute)


def literal_defaults() -> list[tuple[str, str]]:
    """(name, text) for defaults written as one literal per name: `x`, 15 s, 2, false, –."""
    pairs = []
    for names, cell in readme_rows():
        texts = [t.strip() for t in re.sub(r"\s*\(.*?\)", "", cell).split(",")]
        if texts == ["–"]:  # none, for every name of the row
            texts = texts * len(names)
        if len(texts) == len(names):
            pairs += [(n, t) for n, t in zip(names, texts, strict=True) if n in _field_names()]
    return pairs


def _field_names() -> set[str]:
    return {key.upper() for key in app_settings._FIELDS}


@pytest.mark.parametrize(("name", "text"), literal_defaults())
def test_readme_default_should_be_the_settings_default_when_written_as_a_literal(
    name: str, text: str
) -> None:
    default = default_of(name)
    value = text.strip("`").removesuffix(" s")
    if text == "–":
        assert default in (None, ()), f"{name}: README says none, settings say {default!r}"
    elif isinstance(default, str):
        assert value == default, name
    elif re.fullmatch(r"[0-9.]+", value):
        assert float(value) == default, name
    elif value in ("true", "false"):
        assert default is (value == "true"), name
    # prose ("detected", "the admin URL") describes a computed default: not checked


def test_readme_should_have_literal_defaults_to_check() -> None:
    """Guards the test above: most rows are checked, not skipped as prose."""
    assert len(literal_defaults()) >= 20


_ENV_NAME = re.compile(r"(KONG_CANARY|PROMETHEUS)_[A-Z0-9_]+")


def _environment_reads() -> dict[str, set[str]]:
    """Variable -> files (under sidecar/, outside settings.py) naming it as a whole string."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        where = str(path.relative_to(PACKAGE))
        if where == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _ENV_NAME.fullmatch(node.value)
            ):
                found.setdefault(node.value, set()).add(where)
    return found


def test_only_the_documented_variables_should_be_read_outside_settings() -> None:
    assert _environment_reads() == READ_OUTSIDE_SETTINGS


def test_worker_tmp_dir_should_reach_gunicorn_through_settings(tmp_path: Path) -> None:
    env = {"KONG_CANARY_WORKER_TMP_DIR": str(tmp_path)}
    loaded = app_settings.load_settings(environ=env)
    assert loaded.worker_tmp_dir == str(tmp_path)
    assert SidecarApplication(loaded).cfg.worker_tmp_dir == str(tmp_path)
    assert SidecarApplication(app_settings.Settings()).cfg.worker_tmp_dir is None


def test_worker_tmp_dir_should_be_refused_when_it_is_not_a_directory(tmp_path: Path) -> None:
    env = {"KONG_CANARY_WORKER_TMP_DIR": str(tmp_path / "missing")}
    with pytest.raises(app_settings.SettingsError, match="worker_tmp_dir: directory"):
        app_settings.load_settings(environ=env)
