"""values.schema.json never admits a value the app refuses.

The ConfigMap template says which value becomes which ``KONG_CANARY_*`` setting; for each, every
edge of the value's schema (enum members, minimum, maximum, just above an exclusive minimum,
both booleans) is fed to ``sidecar.settings.load_settings``, which must accept it. So a setting's
rule tightened in settings.py, or loosened in the schema, fails here rather than at a pod's
start. (The chart may be stricter than the app: the edges outside the schema are not tested.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from sidecar import settings as app_settings
from tests.helm.chart import CHART_DIR

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
CONFIGMAP = (CHART_DIR / "templates" / "configmap.yaml").read_text(encoding="utf-8")
BASE_ENV = {
    "KONG_CANARY_TOKENS": "spinnaker=schema-edge-token-0123456789",
    "KONG_CANARY_KONG_ADMIN_URL": "http://kong:8001",
}


def companions(env: str, edge: Any) -> dict[str, str]:
    """Settings the app accepts only together with others (settings.py ``_validate``); the
    chart's templates or schema keep those together."""
    if env == "KONG_CANARY_KONG_FLAVOUR" and edge == "konnect":
        return {
            "KONG_CANARY_KONNECT_TOKEN": "kpat_edge",
            "KONG_CANARY_KONNECT_CONTROL_PLANE_ID": "cp",
        }
    if env == "KONG_CANARY_LEASE_MAX":  # leaseDefault <= leaseMax: checked by the templates
        return {"KONG_CANARY_LEASE_DEFAULT": _env_text(edge)}
    if env == "KONG_CANARY_GATEWAY_METRICS" and edge is True:  # the templates add both
        return {
            "KONG_CANARY_GATEWAY_INGEST_TOKEN": BASE_ENV["KONG_CANARY_TOKENS"].split("=", 1)[1],
            "KONG_CANARY_GATEWAY_INGEST_URL": "http://kc.ns.svc:8080",
        }
    return {}


def value_settings() -> dict[str, str]:
    """values path -> setting, for values the ConfigMap passes through as they are
    (directly, or under ``with`` when not empty)."""
    direct = re.findall(r"(KONG_CANARY_\w+): \{\{ \.Values\.([\w.]+) \| quote \}\}", CONFIGMAP)
    guarded = re.findall(
        r"with \.Values\.([\w.]+) \}\}\n\s+(KONG_CANARY_\w+): \{\{ \. \| quote \}\}", CONFIGMAP
    )
    return {path: env for env, path in direct} | dict(guarded)


def schema_of(path: str) -> dict[str, Any]:
    node = SCHEMA
    for key in path.split("."):
        node = node["properties"][key]
    return node


def edges(schema: dict[str, Any]) -> list[Any]:
    if "enum" in schema:
        return [v for v in schema["enum"] if v != ""]  # "" means unset (not rendered)
    if schema.get("type") == "boolean":
        return [True, False]
    found = [schema[k] for k in ("minimum", "maximum") if k in schema]
    if "exclusiveMinimum" in schema:
        step = 1 if schema.get("type") == "integer" else 0.001
        found.append(schema["exclusiveMinimum"] + step)
    return found


def _env_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


CASES = [
    (path, env, edge)
    for path, env in sorted(value_settings().items())
    for edge in edges(schema_of(path))
]


def test_every_setting_the_configmap_maps_should_be_one_the_app_reads() -> None:
    known = {app_settings.ENV_PREFIX + k.upper() for k in app_settings._FIELDS}
    assert set(value_settings().values()) <= known
    assert len(CASES) >= 15, "too few edges found: the template's spelling changed?"


@pytest.mark.parametrize(("path", "env", "edge"), CASES)
def test_app_should_accept_the_schemas_edge_value(path: str, env: str, edge: Any) -> None:
    environ = {**BASE_ENV, env: _env_text(edge), **companions(env, edge)}
    app_settings.load_settings(environ=environ)  # raises SettingsError naming the setting
