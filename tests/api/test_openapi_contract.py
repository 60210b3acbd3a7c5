"""The OpenAPI document and the app agree: every route the app serves is in the document with
the same path template, methods and path parameters (the paths are built from the url_map), the
document served is the one the tests validate against, and every ``format`` it declares is
checked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from flask import Flask

from sidecar.api.formats import FORMAT_CHECKER
from sidecar.api.openapi import document
from sidecar.api.operations import operation, paths_of
from sidecar.app import close_app, create_app
from sidecar.core.timestamps import parse_rfc3339
from sidecar.kong.client import KongAdmin
from sidecar.kong.models import Flavour
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.openapi_bodies import check_body

UNDOCUMENTED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every rule


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    """The app as gunicorn builds it; its routes are all that is read (Kong is never called)."""

    def no_kong(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"the route table needs no Kong: {request.method} {request.url}")

    settings = Settings(
        tokens=(ApiToken("t", "test-token-0123456789"),),
        kong=KongSettings(admin_url="http://kong.test:8001"),
    )
    http = httpx.Client(base_url="http://kong.test:8001", transport=httpx.MockTransport(no_kong))
    built = create_app(settings, KongAdmin(http, flavour=Flavour.KONG_3), sweep_leases=False)
    yield built
    close_app(built)


def served(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path template, method) of every rule: ``<ramp_id>`` is ``{ramp_id}``."""
    pairs = set()
    for rule in app.url_map.iter_rules():
        template = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        pairs |= {(template, m) for m in rule.methods or () if m not in UNDOCUMENTED_METHODS}
    return pairs


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}


def test_document_should_list_exactly_the_routes_the_app_serves(app: Flask) -> None:
    assert served(app) == documented(document())


def test_document_of_the_running_app_should_be_the_one_the_tests_validate_against(
    app: Flask,
) -> None:
    """``document()`` (no app: the route table) is what the suite checks responses against;
    the app serves ``document(app)``: the two must be the same document."""
    served_document = app.test_client().get("/openapi.json").get_json()
    assert served_document == json.loads(json.dumps(document()))
    assert served_document == json.loads(json.dumps(document(app)))


def test_path_parameters_should_be_declared_under_the_names_in_the_template() -> None:
    for path, ops in document()["paths"].items():
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert declared == in_template, f"{method.upper()} {path}"


def test_path_parameters_should_be_the_rule_arguments_of_the_view_serving_them(app: Flask) -> None:
    doc = document(app)
    for rule in app.url_map.iter_rules():
        template = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in set(rule.methods or ()) - UNDOCUMENTED_METHODS:
            op = doc["paths"][template][method.lower()]
            declared = [p["name"] for p in op.get("parameters", ()) if p["in"] == "path"]
            assert sorted(declared) == sorted(rule.arguments), f"{method} {rule.rule}"


def _keyword(node: Any, name: str) -> Iterator[str]:
    """Every string value of the schema keyword ``name`` anywhere in ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get(name), str):
            yield node[name]
        for value in node.values():
            yield from _keyword(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _keyword(value, name)


def test_every_schema_an_operation_names_should_be_a_component() -> None:
    doc = document()
    named = {ref.removeprefix("#/components/schemas/") for ref in _keyword(doc, "$ref")}
    assert named <= set(doc["components"]["schemas"]), named - set(doc["components"]["schemas"])


def test_every_operation_should_say_what_success_looks_like() -> None:
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert op["summary"], f"{method.upper()} {path}"
            assert any(s.startswith("2") for s in op["responses"]), f"{method.upper()} {path}"


def _route_table(*rules: tuple[str, Any]) -> Flask:
    table = Flask("contract-test", static_folder=None)
    for number, (rule, view) in enumerate(rules):
        table.add_url_rule(rule, f"view_{number}", view, methods=["GET"])
    return table


_DESCRIBED = operation("a view", responses={"200": {"description": "ok"}})


def test_a_route_without_an_operation_should_stop_the_document() -> None:
    with pytest.raises(LookupError, match="has no @operation"):
        paths_of(_route_table(("/v1/things", lambda: "")))


def test_a_path_parameter_nobody_described_should_stop_the_document() -> None:
    with pytest.raises(LookupError, match="'thing'"):
        paths_of(_route_table(("/v1/things/<thing>", _DESCRIBED(lambda thing: ""))))


def test_a_converter_without_a_schema_should_stop_the_document() -> None:
    with pytest.raises(LookupError, match="'int'"):
        paths_of(_route_table(("/v1/upstreams/<int:upstream>", _DESCRIBED(lambda upstream: ""))))


def test_the_path_parameter_should_be_named_by_the_rule_and_described_by_the_table() -> None:
    paths = paths_of(
        _route_table(("/v1/ramps/<ramp_id>/steps", _DESCRIBED(lambda ramp_id: ""))),
    )
    op = paths["/v1/ramps/{ramp_id}/steps"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in op["parameters"]] == [
        ("ramp_id", "path", True)
    ]
    assert op["parameters"][0]["description"] == "ramp id as returned when the ramp started"


def test_every_declared_format_should_be_one_the_response_checker_enforces() -> None:
    assert set(_keyword(document(), "format")) <= set(FORMAT_CHECKER.checkers)


@pytest.mark.parametrize(
    ("value", "conforms"),
    [
        ("2027-01-15T08:00:00Z", True),
        ("2027-01-15t08:00:00.250+05:30", True),
        ("2027-01-15T08:00:00", False),  # no offset: not RFC 3339
        ("2027-01-15 08:00:00Z", False),
        ("20270115T080000Z", False),  # ISO 8601 basic format
        ("2027-02-30T08:00:00Z", False),
        ("2027-01-15T24:00:00Z", False),
        ("2026-12-31T23:59:60Z", True),  # a leap second (RFC 3339 section 5.7)
        ("2027-01-15T08:00:61Z", False),
        ("2027-01-15T08:00:00+24:00", False),
        ("２０２７-01-15T08:00:00Z", False),  # DIGIT is ASCII (RFC 5234)
        ("tomorrow", False),
    ],
)
def test_date_time_should_be_checked_as_rfc_3339(value: str, conforms: bool) -> None:
    """The responses' ``date-time`` is the rule a ramp's ``start_at`` is read with."""
    assert FORMAT_CHECKER.conforms(value, "date-time") is conforms
    try:
        parse_rfc3339(value)
    except ValueError:
        assert not conforms
    else:
        assert conforms


@pytest.mark.parametrize(
    ("value", "conforms"),
    [
        ("https://kong-canary.example.com/v1/ramps/abc", True),
        ("/v1/ramps/abc", False),  # Orca needs absolute URLs
        ("http://", False),
        ("http://host/with space", False),
    ],
)
def test_uri_should_be_checked_as_absolute(value: str, conforms: bool) -> None:
    assert FORMAT_CHECKER.conforms(value, "uri") is conforms


_RAMP = {
    "id": "r1",
    "upstream": "orders",
    "status": "RUNNING",
    "progress": 50,
    "split": None,
    "target": {"stable": 90, "baseline": 5, "canary": 5},
    "message": "step 1 of 2",
    "next_step_at": None,
    "statusUrl": "https://kong-canary.example.com/v1/ramps/r1",
    "cancelUrl": "https://kong-canary.example.com/v1/ramps/r1/cancel",
}
_RAMP_SCHEMA = {"$ref": "#/components/schemas/Ramp"}


def test_a_body_checked_against_the_document_should_have_its_formats_checked() -> None:
    """``check_body`` is how every response check of the suite validates (tests/openapi_bodies):
    a relative statusUrl, which Orca cannot poll, breaks the document's ``uri``."""
    doc = document()
    check_body(doc, _RAMP_SCHEMA, _RAMP)
    with pytest.raises(jsonschema.ValidationError, match="is not a 'uri'"):
        check_body(doc, _RAMP_SCHEMA, {**_RAMP, "statusUrl": "/v1/ramps/r1"})


def test_a_lease_without_an_offset_should_break_the_document() -> None:
    doc = document()
    lease = doc["components"]["schemas"]["Change"]["properties"]["lease"]
    check_body(doc, lease, {"expires_at": "2027-01-15T08:00:00Z", "epoch": 3})
    with pytest.raises(jsonschema.ValidationError):
        check_body(doc, lease, {"expires_at": "2027-01-15T08:00:00", "epoch": 3})


def test_the_status_page_should_be_served_only_under_its_headers(app: Flask) -> None:
    """Flask's default static route served ``sidecar/static`` at ``/static/<path>``: the status
    page without its CSP and framing ban, on a route the document did not list."""
    client = app.test_client()
    assert client.get("/static/status/index.html").status_code == 404
    assert client.get("/static/status/status.js").status_code == 404
    assert client.get("/").headers["X-Frame-Options"] == "DENY"
