"""Every metric label fed by client input takes its values from a bounded set: a flood of
odd input must leave the number of series on ``/metrics`` where it was (issue 13, item 4).

Each test warms up first (one odd request creates the bounded series it may use, such as
``method="other"``), then floods, then counts again: the count must not move at all."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import close_app
from tests.gateway.conftest import FakeKong, entries_of, health_body, upstream_id
from tests.gateway.test_api import FLAVOUR, WRITE, auth, make_app

VERSION = "3.9.3"
ORDERS_ID = upstream_id("orders", health_body(VERSION))


def untagged(body: dict[str, Any]) -> dict[str, Any]:
    """The same upstream as Kong would show it before any canary: no tags on its targets."""
    out = copy.deepcopy(body)
    for target in out["data"]:
        target["tags"] = []
        target["upstream"]["id"] = "0b5d3c1e-9f1a-4a57-8d39-4c1f5b1a2e01"
    return out


@pytest.fixture
def kong() -> FakeKong:
    return FakeKong({"orders": health_body(VERSION), "legacy": untagged(health_body(VERSION))})


@pytest.fixture
def client(kong: FakeKong, clock) -> Iterator[FlaskClient]:  # type: ignore[no-untyped-def]
    app = make_app(
        kong,
        FLAVOUR[VERSION],
        clock,
        gateway_ingest_token=WRITE.token,
        public_url="http://sidecar.test",
    )
    with app.test_client() as c:
        yield c
    close_app(app)


def spellings(word: str, count: int) -> list[str]:
    """``count`` spellings of ``word`` that differ from it in letter case only."""
    letters = [i for i, c in enumerate(word) if c.isalpha()]
    out = []
    for flips in itertools.product((False, True), repeat=len(letters)):
        if not any(flips):
            continue
        chars = list(word)
        for i, flip in zip(letters, flips, strict=True):
            chars[i] = chars[i].swapcase() if flip else chars[i]
        out.append("".join(chars))
        if len(out) == count:
            return out
    raise AssertionError(f"{word!r} has fewer than {count} case spellings")


def with_host(host: str) -> dict[str, Any]:
    entry = copy.deepcopy(entries_of(VERSION)[0])
    entry["service"]["host"] = host
    return entry


def series(client: FlaskClient) -> int:
    text = client.get("/metrics").get_data(as_text=True)
    return sum(len(family.samples) for family in text_string_to_metric_families(text))


def test_invented_http_methods_add_no_series(client: FlaskClient) -> None:
    for path in ("/healthz", "/v1/kong-log", "/v1/upstreams/orders/split", "/nowhere"):
        client.open(path, method="WARMUP", headers=auth())
    series(client)  # a scrape is counted once it is answered: the next one shows it
    before = series(client)
    for n in range(1000):
        path = ("/healthz", "/v1/kong-log", "/v1/upstreams/orders/split", "/nowhere")[n % 4]
        response = client.open(path, method=f"M{n:04d}", headers=auth())
        assert response.status_code in (404, 405)
    assert series(client) == before


def test_case_spellings_of_an_upstream_in_entries_add_no_series(
    client: FlaskClient, kong: FakeKong
) -> None:
    """Kong's balancer takes a service host as an exact name; Kong's Admin API reads any case
    of the id as that upstream. Neither may become a label of its own."""
    hosts = spellings("orders", 63) + spellings(ORDERS_ID, 137) + [ORDERS_ID]
    warm = client.post(
        "/v1/kong-log", json=[with_host("orders"), with_host(hosts[0])], headers=auth()
    )
    assert warm.status_code == 200
    series(client)
    before = series(client)
    for start in range(0, len(hosts), 50):
        batch = [with_host(h) for h in hosts[start : start + 50]] + [with_host("orders")]
        response = client.post("/v1/kong-log", json=batch, headers=auth())
        assert response.status_code == 200
        body = response.get_json()
        assert body["accepted"] == 1
        assert body["rejected_reasons"] == {"unknown_upstream": len(batch) - 1}
    assert series(client) == before
    assert not any(
        call.startswith(f"GET /upstreams/{ORDERS_ID[:8].upper()}") for call in kong.calls
    )


def test_case_spellings_of_the_upstream_override_count_under_kongs_name(
    client: FlaskClient, kong: FakeKong, scrape_delta
) -> None:  # type: ignore[no-untyped-def]
    """The override names an upstream as the API does (name or id): an id, in any case, is
    counted under the upstream's name, after one id lookup per id."""
    client.post("/v1/kong-log", json=with_host("orders"), headers=auth())
    series(client)
    before = series(client)
    scrape_delta.start(lambda: client.get("/metrics").get_data(as_text=True))
    for spelling in spellings(ORDERS_ID, 200):
        headers = {**auth(), "X-Kong-Canary-Upstream": spelling}
        response = client.post("/v1/kong-log", json=with_host("anything"), headers=headers)
        assert response.status_code == 200 and response.get_json()["accepted"] == 1
    assert series(client) == before
    accepted = {
        dict(labels)["upstream"]: value
        for (name, labels), value in scrape_delta.delta().items()
        if name == "kong_canary_gateway_requests_total"
    }
    assert accepted == {"orders": 200}
    assert kong.calls.count(f"GET /upstreams/{ORDERS_ID}") == 1


def test_unknown_and_unmanaged_upstreams_in_entries_add_no_series(client: FlaskClient) -> None:
    """``legacy`` is in Kong but no target carries our tags: no canary ever ran on it."""
    client.post("/v1/kong-log", json=[with_host("legacy"), with_host("nowhere-0")], headers=auth())
    series(client)
    before = series(client)
    hosts = [f"nowhere-{n}" for n in range(1, 1001)]
    for start in range(0, len(hosts), 250):
        batch = [with_host(h) for h in hosts[start : start + 250]] + [with_host("legacy")]
        response = client.post("/v1/kong-log", json=batch, headers=auth())
        assert response.status_code == 422
        reasons = response.get_json()["error"]["details"]["rejected_reasons"]
        assert reasons == {"unknown_upstream": 250, "unmanaged_upstream": 1}
    assert series(client) == before


def test_upstream_names_in_refused_api_requests_add_no_series(client: FlaskClient) -> None:
    """Splits, rollbacks and window changes on upstreams Kong does not have are refused; the
    names in their URLs must not become labels."""
    client.put("/v1/upstreams/warm-up/split", json={"split": {"stable": 100}}, headers=auth())
    client.post("/v1/upstreams/warm-up/rollback", headers=auth())
    client.delete("/v1/upstreams/warm-up/gateway-metrics", headers=auth())
    client.post("/v1/upstreams/warm-up/gateway-metrics", headers=auth())
    series(client)
    before = series(client)
    for n in range(1000):
        name = f"refused-{n}"
        response = (
            client.put(
                f"/v1/upstreams/{name}/split", json={"split": {"stable": 100}}, headers=auth()
            )
            if n % 4 == 0
            else client.post(f"/v1/upstreams/{name}/rollback", headers=auth())
            if n % 4 == 1
            else client.delete(f"/v1/upstreams/{name}/gateway-metrics", headers=auth())
            if n % 4 == 2
            else client.post(f"/v1/upstreams/{name}/gateway-metrics", headers=auth())
        )
        assert response.status_code >= 400, (name, response.get_json())
    assert series(client) == before
