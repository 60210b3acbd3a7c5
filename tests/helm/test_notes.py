"""NOTES.txt: how to reach the service per Service type, and an Orca preconfigured-webhook
snippet whose URL Orca accepts with its default URL restrictions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from sidecar.api.schemas import SET_SPLIT
from tests.helm.chart import Rendered

# Orca's defaults, from spinnaker/spinnaker orca/orca-core/src/main/java/com/netflix/spinnaker/
# orca/config/UserConfiguredUrlRestrictions.java (Builder): allowedHostnamesRegex ".*\\..+",
# excludedDomains [spinnaker, local, localdomain, internal] applied through the template
# "(?=.+\\.%s$).*\\..+" with Pattern.quote; Matcher.matches() is a full match.
ORCA_ALLOWED_HOSTNAMES = re.compile(r".*\..+")
ORCA_EXCLUDED_DOMAINS = ["spinnaker", "local", "localdomain", "internal"]
ORCA_EXCLUDED = [re.compile(rf"(?=.+\.{re.escape(d)}$).*\..+") for d in ORCA_EXCLUDED_DOMAINS]


def orca_accepts_host(host: str) -> bool:
    """UserConfiguredUrlRestrictions.isValidHostname with the default settings."""
    return ORCA_ALLOWED_HOSTNAMES.fullmatch(host) is not None and not any(
        p.fullmatch(host) for p in ORCA_EXCLUDED
    )


def orca_snippet(notes: str) -> dict[str, Any]:
    match = re.search(r"# --- orca-local.yml ---\n(.*?)# --- end ---", notes, re.DOTALL)
    assert match, notes
    return yaml.safe_load(match[1])


def test_orca_check_should_refuse_cluster_local_and_single_word_hosts() -> None:
    """Guards the helper: the hosts Orca is known to refuse by default (issue #7343)."""
    assert not orca_accepts_host("kc-kong-canary.canary.svc.cluster.local")
    assert not orca_accepts_host("spin-kong-canary.spinnaker")
    assert not orca_accepts_host("kong-canary")
    assert orca_accepts_host("kong-canary.example.com")


@pytest.mark.parametrize(
    ("release", "namespace"), [("kc", "canary"), ("prod", "spinnaker"), ("kong-canary", "cd")]
)
def test_webhook_url_should_be_the_service_and_pass_orca_defaults_when_installed(
    render_with: Callable[..., Rendered], release: str, namespace: str
) -> None:
    rendered = render_with(release=release, namespace=namespace)
    service = rendered.one("Service")
    port = service["spec"]["ports"][0]["port"]
    base = f"http://{service['metadata']['name']}.{namespace}.svc:{port}"

    (stage,) = orca_snippet(rendered.notes)["webhook"]["preconfigured"]
    assert stage["url"] == base + "/v1/upstreams/${parameterValues.upstream}/split"
    assert stage["method"] == "PUT"
    assert stage["description"] == "Set canary traffic split"
    host = re.match(r"https?://([^:/]+)", stage["url"])[1]  # type: ignore[index]
    assert orca_accepts_host(host)


def test_webhook_stage_should_send_json_with_its_parameters(
    scenario_renders: dict[str, Rendered],
) -> None:
    (stage,) = orca_snippet(scenario_renders["defaults"].notes)["webhook"]["preconfigured"]
    # A String payload goes out as text/plain unless Content-Type says otherwise.
    assert stage["customHeaders"]["Content-Type"] == ["application/json"]
    assert stage["customHeaders"]["Authorization"][0].startswith("Bearer ")
    names = [p["name"] for p in stage["parameters"]]
    used = set(re.findall(r"\$\{parameterValues\.(\w+)\}", stage["url"] + stage["payload"]))
    assert used == set(names)
    # Orca only knows string parameters (PreconfiguredStageParameter).
    assert {p["type"] for p in stage["parameters"]} == {"string"}
    # Orca substitutes the string parameters into the String payload before sending it; the
    # result must be a body the sidecar's PUT /v1/upstreams/{u}/split accepts.
    defaults = {p["name"]: p.get("defaultValue") for p in stage["parameters"]}
    filled = re.sub(
        r"\$\{parameterValues\.(\w+)\}", lambda m: defaults[m[1]], stage["payload"]
    ).replace("${execution.id}", "01J0EXECUTION")
    body = json.loads(filled)
    Draft202012Validator(SET_SPLIT).validate(body)
    assert sum(float(v) for v in body["split"].values()) == 100
    # Codes the README lists as fail-fast; 502/503 stay retried by Orca.
    assert stage["failFastStatusCodes"] == [400, 401, 403, 404, 409, 422]


def test_webhook_stage_should_finish_only_when_kong_serves_the_split(
    scenario_renders: dict[str, Rendered],
) -> None:
    """As the rendered stages (issue 12 §2): wait inside Orca's read timeout, then poll."""
    (stage,) = orca_snippet(scenario_renders["defaults"].notes)["webhook"]["preconfigured"]
    assert '"wait": 10' in stage["payload"]
    assert stage["waitForCompletion"] is True
    assert (stage["statusUrlResolution"], stage["statusUrlJsonPath"]) == (
        "webhookResponse",
        "$.statusUrl",
    )
    assert (stage["statusJsonPath"], stage["progressJsonPath"]) == ("$.status", "$.message")
    assert (stage["successStatuses"], stage["terminalStatuses"]) == ("SUCCEEDED", "FAILED")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "port-forward svc/kc-kong-canary 8080"),
        ({"service": {"type": "NodePort", "nodePort": 30880}}, "NODE_PORT"),
        ({"service": {"type": "LoadBalancer"}}, "SERVICE_IP"),
    ],
)
def test_notes_should_explain_access_for_the_service_type(
    render_with: Callable[..., Rendered], values: dict[str, Any], expected: str
) -> None:
    notes = render_with(values).notes
    assert expected in notes
    others = {"port-forward", "NODE_PORT", "SERVICE_IP"} - {expected.split()[0]}
    assert not any(o in notes for o in others)


def test_notes_should_name_the_existing_secret_when_set(
    scenario_renders: dict[str, Rendered],
) -> None:
    notes = scenario_renders["existing-secret"].notes
    assert "get secret kong-canary-credentials" in notes
    assert "{.data.api-tokens}" in notes
