"""values.yaml and values.schema.json: bad values fail at install with the field named, and
every value is typed and documented.

Helm validates the merged values against values.schema.json before rendering (the same call
`helm install` makes), so a refusal here is a refusal at install.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.helm.chart import CHART_DIR, Rendered

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
VALUES_TEXT = (CHART_DIR / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
TOKEN = "t0k3n-long-enough-000"

# (values, text the error must contain): schema refusals name the JSON pointer of the field.
SCHEMA_REFUSALS = [
    ({"replicaCount": 0}, "/replicaCount"),
    ({"workers": "4"}, "/workers"),
    ({"replicas": 3}, "'replicas'"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"pullpolicy": "Always"}}, "'pullpolicy'"),
    ({"config": {"maxShiftedPercent": 150}}, "/config/maxShiftedPercent"),
    ({"config": {"publicUrl": "kong-canary:8080"}}, "/config/publicUrl"),
    ({"kong": {"adminUrl": "kong-admin:8001"}}, "/kong/adminUrl"),
    ({"kong": {"flavour": "4.x"}}, "/kong/flavour"),
    ({"kong": {"flavour": "konnect"}}, "/kong/konnectControlPlaneId"),
    ({"kong": {"readTimeout": 0}}, "/kong/readTimeout"),
    ({"auth": {"tokens": [{"name": "ci", "token": "short"}]}}, "/auth/tokens/0/token"),
    ({"auth": {"tokens": [{"name": "a=b", "token": TOKEN}]}}, "/auth/tokens/0/name"),
    ({"auth": {"tokens": [{"token": TOKEN}]}}, "/auth/tokens/0"),
    ({"auth": {"tokens": [{"name": "ci", "token": TOKEN, "role": "ro"}]}}, "/auth/tokens/0/role"),
    (
        {"auth": {"tokens": [{"name": "ci", "token": TOKEN, "upstreams": ["a|b"]}]}},
        "/auth/tokens/0/upstreams/0",
    ),
    ({"config": {"logLevel": "verbose"}}, "/config/logLevel"),
    (
        {"auth": {"existingSecret": "creds", "tokens": [{"name": "ci", "token": TOKEN}]}},
        "/auth/tokens",
    ),
    ({"service": {"port": 70000}}, "/service/port"),
    ({"service": {"type": "ExternalName"}}, "/service/type"),
    ({"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    (
        {"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
        "/podSecurityContext/seccompProfile/type",
    ),
    (
        {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
        "/containerSecurityContext/readOnlyRootFilesystem",
    ),
    (
        {"containerSecurityContext": {"allowPrivilegeEscalation": True}},
        "/containerSecurityContext/allowPrivilegeEscalation",
    ),
    (
        {"containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
        "/containerSecurityContext/capabilities/drop",
    ),
    ({"networkPolicy": {"enabled": "yes"}}, "/networkPolicy/enabled"),
    ({"networkPolicy": {"kongAdmin": {"ports": []}}}, "/networkPolicy/kongAdmin/ports"),
    ({"serviceMonitor": {"interval": "30"}}, "/serviceMonitor/interval"),
    ({"kayentaSync": {"enabled": True}}, "/kayentaSync/url"),
    ({"kayentaSync": {"dir": "configs"}}, "/kayentaSync/dir"),
    ({"kayentaSync": {"application": "my app"}}, "/kayentaSync/application"),
    ({"kayentaSync": {"dryRun": "yes"}}, "/kayentaSync/dryRun"),
    ({"extraEnv": [{"value": "x"}]}, "/extraEnv/0"),
    ({"podDisruptionBudget": {"maxUnavailable": "half"}}, "/podDisruptionBudget/maxUnavailable"),
    # settings.py: leases are positive seconds, the sweep runs every 1..300 s
    ({"config": {"leaseDefault": 0}}, "/config/leaseDefault"),
    ({"config": {"leaseMax": "1d"}}, "/config/leaseMax"),
    ({"config": {"leaseCheckInterval": 0.5}}, "/config/leaseCheckInterval"),
    ({"config": {"leaseCheckInterval": 301}}, "/config/leaseCheckInterval"),
    ({"auth": {"rampSecret": "too-short"}}, "/auth/rampSecret"),
    ({"auth": {"rampSecret": "has a space in it, 16+"}}, "/auth/rampSecret"),
    ({"auth": {"existingSecret": "creds", "rampSecret": "r" * 20}}, "/auth/rampSecret"),
    ({"auth": {"existingSecretKeys": {"rampSecret": ""}}}, "/auth/existingSecretKeys/rampSecret"),
    ({"kong": {"propagationNodes": ["kong-0:8001"]}}, "/kong/propagationNodes/0"),
    (
        {"kong": {"propagationNodes": ["http://kong-0:8001,http://kong-1:8001"]}},
        "/kong/propagationNodes/0",
    ),
    ({"kong": {"propagationNodes": "http://kong-0:8001"}}, "/kong/propagationNodes"),
    ({"gatewayMetrics": {"enabled": "true"}}, "/gatewayMetrics/enabled"),
    ({"gatewayMetrics": {"ingestUrl": "kong-canary:8080"}}, "/gatewayMetrics/ingestUrl"),
    ({"gatewayMetrics": {"ingestTokenName": "a=b"}}, "/gatewayMetrics/ingestTokenName"),
    ({"gatewayMetrics": {"ingestToken": TOKEN}}, "'ingestToken'"),
]

# Cross-field rules the templates enforce with `fail`; the message names the fields.
TEMPLATE_REFUSALS = [
    (
        {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
        "podDisruptionBudget: set only one of minAvailable and maxUnavailable",
    ),
    (
        {"podDisruptionBudget": {"maxUnavailable": None}},
        "podDisruptionBudget: set one of minAvailable and maxUnavailable",
    ),
    (
        {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 2}},
        "autoscaling.maxReplicas must be at least autoscaling.minReplicas",
    ),
    ({"kong": {"tls": {"caKey": "ca.crt"}}}, "kong.tls.existingSecret is required"),
    (
        {"kong": {"tls": {"existingSecret": "mtls", "clientCertKey": "tls.crt"}}},
        "kong.tls.clientCertKey and kong.tls.clientKeyKey must be set together",
    ),
    (
        {"config": {"leaseDefault": 7200, "leaseMax": 3600}},
        "config.leaseDefault must not exceed config.leaseMax",
    ),
    (
        {"gatewayMetrics": {"enabled": True}, "auth": {"tokens": [{"name": "ci", "token": TOKEN}]}},
        "gatewayMetrics.ingestTokenName is required with auth.tokens",
    ),
    (
        {
            "gatewayMetrics": {"enabled": True, "ingestTokenName": "kong"},
            "auth": {"tokens": [{"name": "ci", "token": TOKEN}]},
        },
        'gatewayMetrics.ingestTokenName: no auth.tokens entry is named "kong"',
    ),
    (
        {
            "gatewayMetrics": {"enabled": True, "ingestTokenName": "ci"},
            "auth": {"tokens": [{"name": "ci", "token": TOKEN, "role": "read"}]},
        },
        'gatewayMetrics.ingestTokenName: token "ci" has role read, needs role write',
    ),
    (
        {
            "gatewayMetrics": {"enabled": True, "ingestTokenName": "ci"},
            "auth": {"tokens": [{"name": "ci", "token": TOKEN, "role": "admin"}]},
        },
        'gatewayMetrics.ingestTokenName: token "ci" has role admin, needs role write',
    ),
    (
        {"gatewayMetrics": {"enabled": True, "ingestTokenName": "kong"}},
        "gatewayMetrics.ingestTokenName: auth.tokens is empty",
    ),
    (
        {
            "gatewayMetrics": {"enabled": True, "ingestTokenName": "kong"},
            "auth": {"existingSecret": "creds"},
        },
        "gatewayMetrics.ingestTokenName must be empty with auth.existingSecret",
    ),
    (
        {
            "gatewayMetrics": {"enabled": True},
            "networkPolicy": {"enabled": True, "kongHttpLog": {"from": []}},
        },
        "networkPolicy.kongHttpLog.from is empty while gatewayMetrics.enabled",
    ),
]


@pytest.mark.parametrize(("values", "field"), SCHEMA_REFUSALS, ids=[f for _, f in SCHEMA_REFUSALS])
def test_install_should_refuse_bad_value_naming_field(
    render_with: Callable[..., Rendered], values: dict[str, Any], field: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        render_with(values)
    assert field in str(refused.value)


@pytest.mark.parametrize(
    ("values", "message"), TEMPLATE_REFUSALS, ids=[m[:60] for _, m in TEMPLATE_REFUSALS]
)
def test_install_should_refuse_conflicting_values_naming_fields(
    render_with: Callable[..., Rendered], values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmError) as refused:
        render_with(values)
    assert message in str(refused.value)


def test_validate_schema_should_accept_the_defaults(chart: helm.Chart) -> None:
    chart.validate_schema({})


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _nodes(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _nodes(child, f"{path}/{i}")


def test_schema_should_be_self_contained_draft07() -> None:
    """No remote $ref: air-gapped installs would break (nginx/kubernetes-ingress#5374)."""
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    refs = [node["$ref"] for _, node in _nodes(SCHEMA) if isinstance(node, dict) and "$ref" in node]
    assert refs
    for ref in refs:
        assert ref.startswith("#/definitions/"), ref
        assert ref.removeprefix("#/definitions/") in SCHEMA["definitions"], ref


def test_schema_should_close_every_object() -> None:
    """Each object schema with named properties refuses unknown keys (typos fail)."""
    open_objects = [
        path
        for path, node in _nodes(SCHEMA)
        if isinstance(node, dict)
        and isinstance(node.get("properties"), dict)
        # if/then fragments only refine an already closed object
        and not re.search(r"/(if|then|else)(/|$)", path)
        and node.get("additionalProperties") is not False
    ]
    assert open_objects == []


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node


def _assert_same_keys(values: dict[str, Any], schema: dict[str, Any], path: str) -> None:
    props = schema.get("properties", {})
    assert set(values) - {"global"} == set(props) - {"global"}, path or "<top>"
    for key, value in values.items():
        child = props[key]
        # Only inline object schemas describe this chart's own options; definitions ($ref)
        # describe Kubernetes shapes with many optional fields.
        if isinstance(value, dict) and "$ref" not in child and "properties" in child:
            _assert_same_keys(value, child, f"{path}.{key}")


def test_schema_and_values_should_name_the_same_options() -> None:
    """No option exists only in the schema (undocumented) or only in values (untyped)."""
    _assert_same_keys(VALUES, SCHEMA, "")


KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+):(\s|$)")


def _undocumented_keys() -> list[str]:
    """Keys of fixed-shape objects (schema `properties`) lacking a `# --` comment block."""
    lines = VALUES_TEXT.splitlines()
    # stack of (indent, dotted path, schema of that key or None when free-form)
    stack: list[tuple[int, str, dict[str, Any] | None]] = []
    missing: list[str] = []
    for n, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stripped.startswith("- "):
            # list items are data, not options
            stack.append((indent, "[]", None))
            continue
        match = KEY_LINE.match(line)
        assert match, f"values.yaml line {n + 1} is not a key: {line!r}"
        key = match["key"]
        parent_path, parent_schema = (stack[-1][1], stack[-1][2]) if stack else ("", SCHEMA)
        path = f"{parent_path}.{key}" if parent_path else key
        props = _resolve(parent_schema).get("properties", {}) if parent_schema else {}
        schema = _resolve(props[key]) if key in props else None
        if key in props:
            block = []
            i = n - 1
            while i >= 0 and lines[i].strip().startswith("#"):
                block.append(lines[i].strip())
                i -= 1
            if not any(c.startswith("# -- ") for c in block):
                missing.append(path)
        stack.append((indent, path, schema))
    return missing


def test_values_should_document_every_option() -> None:
    assert _undocumented_keys() == []


def test_schema_should_describe_the_defaults_exactly(chart: helm.Chart) -> None:
    """The values Helm loads are the file's: no key dropped by a stray null or anchor."""
    assert chart.values == VALUES
