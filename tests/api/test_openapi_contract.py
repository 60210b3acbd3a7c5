"""The OpenAPI document and the app agree: every route the app serves is in the document with
the same path template and methods, and every ``format`` the document declares is checked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

from sidecar.api.formats import FORMAT_CHECKER
from sidecar.api.openapi import document
from sidecar.app import close_app, create_app
from sidecar.kong.client import KongAdmin
from sidecar.kong.models import Flavour
from sidecar.settings import ApiToken, KongSettings, Settings

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
        if rule.endpoint == "static":
            continue
        template = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        pairs |= {(template, m) for m in rule.methods or () if m not in UNDOCUMENTED_METHODS}
    return pairs


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}


def test_document_should_list_exactly_the_routes_the_app_serves(app: Flask) -> None:
    assert served(app) == documented(document())


def test_path_parameters_should_be_declared_under_the_names_in_the_template() -> None:
    for path, ops in document()["paths"].items():
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert declared == in_template, f"{method.upper()} {path}"


def _formats(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("format"), str):
            yield node["format"]
        for value in node.values():
            yield from _formats(value)
    elif isinstance(node, list):
        for value in node:
            yield from _formats(value)


def test_every_declared_format_should_be_one_the_response_checker_enforces() -> None:
    assert set(_formats(document())) <= set(FORMAT_CHECKER.checkers)


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
        ("tomorrow", False),
    ],
)
def test_date_time_should_be_checked_as_rfc_3339(value: str, conforms: bool) -> None:
    assert FORMAT_CHECKER.conforms(value, "date-time") is conforms


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
