"""Every metric label fed by client input takes its values from a bounded set: a flood of
odd input must leave the number of series on ``/metrics`` where it was (issue 13, item 4).

Each test warms up first (one odd request creates the bounded series it may use, such as
``method="other"``), then floods, then counts again: the count must not move at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import FakeKong, health_body
from tests.gateway.test_api import FLAVOUR, auth, make_app

VERSION = "3.9.3"


@pytest.fixture
def kong() -> FakeKong:
    return FakeKong({"orders": health_body(VERSION)})


@pytest.fixture
def client(kong: FakeKong, clock) -> Iterator[FlaskClient]:  # type: ignore[no-untyped-def]
    app = make_app(kong, FLAVOUR[VERSION], clock)
    with app.test_client() as c:
        yield c


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
