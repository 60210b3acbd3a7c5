"""Fault injection and the /_kong_local/ test controls (test-only, outside Kong's paths)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.kong_local.conftest import StartKong

SEED = {"upstreams": [{"name": "orders", "targets": [{"target": "10.0.0.1:80", "weight": 100}]}]}
TARGET = "/upstreams/orders/targets/10.0.0.1:80"


@pytest.fixture
def kong(start_kong: StartKong):
    return start_kong("3.9", seed=SEED, test_controls=True)


def _weight(client: httpx.Client) -> int:
    return client.get(TARGET).json()["weight"]


def test_500_is_kongs_database_error_and_changes_nothing(kong, client_for) -> None:
    """kong/tools/utils.lua get_default_exit_body: 500 -> "An unexpected error occurred"."""
    client = client_for(kong)
    kong.app.faults.fail(1, "500")
    r = client.patch(TARGET, json={"weight": 5})
    assert r.status_code == 500 and r.json() == {"message": "An unexpected error occurred"}
    assert _weight(client) == 100
    assert client.patch(TARGET, json={"weight": 5}).status_code == 200  # one-shot


def test_nth_counts_only_matching_methods(kong, client_for) -> None:
    client = client_for(kong)
    kong.app.faults.fail(2, "500", methods=("PATCH",))
    assert client.get(TARGET).status_code == 200
    assert client.patch(TARGET, json={"weight": 1}).status_code == 200
    assert client.get(TARGET).status_code == 200
    assert client.patch(TARGET, json={"weight": 2}).status_code == 500
    assert _weight(client) == 1


def test_after_apply_changes_kong_but_loses_the_answer(kong, client_for) -> None:
    client = client_for(kong)
    kong.app.faults.fail(1, "500", after_apply=True)
    assert client.patch(TARGET, json={"weight": 9}).status_code == 500
    assert _weight(client) == 9


def test_reset_closes_without_answer(kong, client_for) -> None:
    client = client_for(kong)
    kong.app.faults.fail(1, "reset")
    with pytest.raises(httpx.TransportError):
        client.patch(TARGET, json={"weight": 5})
    assert _weight(client) == 100


def test_timeout_holds_until_the_client_gives_up(kong, client_for) -> None:
    client = client_for(kong)
    kong.app.faults.delay = 0.3
    kong.app.faults.fail(1, "timeout")
    with pytest.raises(httpx.ReadTimeout):
        client.patch(TARGET, json={"weight": 5}, timeout=0.05)
    assert _weight(client) == 100


def test_html_and_truncated_bodies(kong, client_for) -> None:
    client = client_for(kong)
    kong.app.faults.fail(1, "html", methods=("GET",))
    r = client.get(TARGET)
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html")
    kong.app.faults.fail(1, "truncated", methods=("GET",), after_apply=True)
    r = client.get(TARGET)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_http_controls_drive_a_separate_process(kong, client_for) -> None:
    client = client_for(kong)
    assert client.post("/_kong_local/faults", json={"nth": 1, "mode": "500"}).status_code == 201
    assert client.delete(TARGET).status_code == 500
    calls = client.get("/_kong_local/calls").json()["calls"]
    assert calls == [["DELETE", TARGET]]  # control calls are not recorded
    client.patch(TARGET, json={"weight": 3})
    assert client.post("/_kong_local/reset").status_code == 204
    assert _weight(client) == 100 and kong.app.calls == [("GET", TARGET)]
    client.post("/upstreams", json={"name": "lazy"})
    assert client.post("/_kong_local/balancer-ready/lazy").status_code == 204
    assert client.post("/_kong_local/balancer-ready/none").status_code == 400


def test_controls_are_absent_by_default(start_kong: StartKong, client_for) -> None:
    client = client_for(start_kong("3.9"))
    r = client.post("/_kong_local/faults", json={"mode": "500"})
    assert r.status_code == 404 and r.json() == {"message": "Not found"}
