"""The guard wired into the app: ``PUT/GET /v1/upstreams/{u}/guard`` and ``POST /v1/kong-log``
fed the batches Kong 2.8.5, 3.4.2 and 3.9.3 posted, with the canary's answers turned into
503s mid-way. The clock is injected; the rollback is recorded (the real path is
``TrafficService.rollback``, exercised by the rollback tests)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from sidecar.api import guard as guard_api
from sidecar.api.openapi import document
from sidecar.gateway.metrics import BOUNDS
from sidecar.guard import Guardian
from tests.gateway.conftest import VERSIONS, FakeKong, health_body, load, variant_by_port
from tests.gateway.test_api import FLAVOUR, auth, make_app
from tests.openapi_bodies import check_body


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=VERSIONS)
def version(request) -> str:  # type: ignore[no-untyped-def]
    return request.param


@pytest.fixture
def setup(version: str, clock) -> Iterator[tuple[FlaskClient, Clock, list[tuple[str, str]]]]:  # type: ignore[no-untyped-def]
    app = make_app(FakeKong({"orders": health_body(version)}), FLAVOUR[version], clock)
    guard_clock, rollbacks = Clock(), []
    guard_api.install(
        app,
        Guardian(
            clock=guard_clock,
            rollback=lambda upstream, reason: rollbacks.append((upstream, reason)),
            bounds=BOUNDS,
            replica="pod-a",
        ),
    )
    with app.test_client() as client:
        yield client, guard_clock, rollbacks


def check(response: Any, method: str, status: int) -> dict[str, Any]:
    """The answer matches what the OpenAPI document declares for it."""
    doc = document()
    op = doc["paths"]["/v1/upstreams/{upstream}/guard"][method]
    assert response.status_code == status, response.get_data(as_text=True)
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    body = response.get_json()
    check_body(doc, schema, body)
    return body


def batches(version: str, *, canary_status: int | None = None) -> list[list[dict[str, Any]]]:
    ports = variant_by_port(version)
    out = []
    for batch in load(version, "http-log-batches")["first_batches"]:
        body = copy.deepcopy(batch["body"])
        if canary_status is not None:
            for entry in body:
                if ports[entry["tries"][-1]["port"]] == "canary":
                    entry["response"]["status"] = canary_status
        out.append(body)
    return out


def test_invalid_guard_is_refused_with_the_field_and_nothing_armed(setup) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = setup
    response = client.put("/v1/upstreams/orders/guard", json={"p99_ratio": 0.5}, headers=auth())
    body = check(response, "put", 422)
    assert body["error"]["field"] == "guard.p99_ratio"
    assert "above 1" in body["error"]["message"]
    assert check(client.get("/v1/upstreams/orders/guard", headers=auth()), "get", 200) == {
        "upstream": "orders",
        "armed": False,
    }


def test_recorded_batches_feed_the_guard_and_a_5xx_canary_is_rolled_back(
    setup, version: str
) -> None:  # type: ignore[no-untyped-def]
    client, clock, rollbacks = setup
    armed = check(
        client.put("/v1/upstreams/orders/guard", json={"min_requests": 5}, headers=auth()),
        "put",
        200,
    )
    assert armed["armed"] and armed["config"]["errors_ratio"] == 1.5
    for _ in range(3):  # healthy: the recorded batches as Kong sent them
        clock.now += 1.0
        for body in batches(version):
            assert client.post("/v1/kong-log", json=body, headers=auth()).status_code == 200
    view = check(client.get("/v1/upstreams/orders/guard", headers=auth()), "get", 200)
    assert view["variants"]["canary"]["requests"] > 0 and view["status"] != "tripped"
    assert rollbacks == []
    for _ in range(20):  # the canary now answers 503
        clock.now += 1.0
        for body in batches(version, canary_status=503):
            client.post("/v1/kong-log", json=body, headers=auth())
        if rollbacks:
            break
    assert [upstream for upstream, _ in rollbacks] == ["orders"]
    assert "5xx" in rollbacks[0][1]
    view = check(client.get("/v1/upstreams/orders/guard", headers=auth()), "get", 200)
    assert view["status"] == "tripped" and view["rolled_back"] and view["replica"] == "pod-a"
