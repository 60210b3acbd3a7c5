"""The ``route`` label of the gateway series and its cap per upstream (issue 15).

The label is the http-log entry's route name, else its id, else ``""``; past
``gateway_max_routes`` routes an upstream's entries count under ``route="other"`` (never
dropped: service-level sums stay exact), ``kong_canary_gateway_route_overflow_total`` counts
them, and ``GET …/split`` says how many routes overflowed.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from sidecar.api import kong_log
from sidecar.app import close_app
from sidecar.core.route_cap import OVERFLOW, route_labels
from sidecar.gateway.entries import route_of, tally
from sidecar.gateway.metrics import BOUNDS, GatewayMetrics
from tests.gateway.conftest import VERSIONS, FakeKong, entries_of, health_body, parse_exposition
from tests.gateway.test_api import FLAVOUR, WRITE, auth, make_app
from tests.gateway.test_entries import ORDERS, StaticLookup


def with_route(entry: dict[str, Any], route: Any) -> dict[str, Any]:
    out = copy.deepcopy(entry)
    if route is None:
        out.pop("route", None)
    else:
        out["route"] = route
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_the_label_is_the_recorded_route_name_in_every_version(version: str) -> None:
    entries = entries_of(version)
    assert {route_of(e) for e in entries} == {"orders"}  # Kong 2.8.5, 3.4.2 and 3.9.3 alike
    counted = tally(entries, StaticLookup({"orders": ORDERS}), BOUNDS, upstream="orders")
    assert {route for _, _, route in counted.series} == {"orders"}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_route_without_name_is_its_id_and_no_route_is_empty(version: str) -> None:
    recorded = entries_of(version)[0]
    route_id = recorded["route"]["id"]
    unnamed = {**recorded["route"], "name": None}  # Kong's name is optional
    assert route_of(with_route(recorded, unnamed)) == route_id
    assert route_of(with_route(recorded, None)) == ""
    assert route_of(with_route(recorded, {"name": 7, "id": ["x"]})) == ""  # odd input: no label


@given(
    admitted=st.frozensets(st.text(min_size=1, max_size=3), max_size=6),
    routes=st.lists(st.text(max_size=3), max_size=20),
    cap=st.integers(min_value=1, max_value=8),
)
def test_route_labels_never_admit_past_the_cap_and_keep_admitted_routes(
    admitted: frozenset[str], routes: list[str], cap: int
) -> None:
    labels, new = route_labels(admitted, routes, cap)
    assert set(labels) == set(routes)
    assert len(new) == len(set(new)) and not set(new) & admitted
    assert len(new) <= max(0, cap - len(admitted))
    for route, label in labels.items():
        if route == "" or route in admitted or route in new:
            assert label == route
        else:
            assert label == OVERFLOW
    # routes are admitted in the order they are first seen
    firsts = [r for i, r in enumerate(routes) if r not in routes[:i]]
    assert new == [r for r in firsts if r and r not in admitted][: len(new)]


def requests_by_route(registry: CollectorRegistry) -> dict[str, float]:
    out: dict[str, float] = {}
    for (name, labels), value in parse_exposition(generate_latest(registry).decode()).items():
        if name == "kong_canary_gateway_requests_total":
            route = dict(labels)["route"]
            out[route] = out.get(route, 0.0) + value
    return out


def test_routes_past_the_cap_count_under_other_and_nothing_is_dropped() -> None:
    template = entries_of("3.4.2")[0]
    entries = [
        with_route(template, {**template["route"], "name": name})
        for name in ["a", "b", "a", "c", "d", "c", "c"]
    ]
    registry = CollectorRegistry()
    metrics = GatewayMetrics.in_registry(registry, max_routes=2)
    metrics.record(tally(entries, StaticLookup({"orders": ORDERS}), BOUNDS, upstream="orders"))
    assert requests_by_route(registry) == {"a": 2.0, "b": 1.0, "other": 4.0}
    overflow = parse_exposition(generate_latest(registry).decode())
    assert (
        overflow[("kong_canary_gateway_route_overflow_total", frozenset({("upstream", "orders")}))]
        == 4.0
    )
    assert metrics.overflow("orders") == (2, 2)
    (warning,) = metrics.route_warnings("orders")
    assert "2 route(s) of orders" in warning and 'route="other"' in warning
    # an admitted route keeps its label; the next batch's new route overflows too
    metrics.record(
        tally(
            [entries[1], with_route(template, {"name": "e"})],
            StaticLookup({"orders": ORDERS}),
            BOUNDS,
            upstream="orders",
        )
    )
    assert requests_by_route(registry) == {"a": 2.0, "b": 2.0, "other": 5.0}
    assert metrics.overflow("orders") == (2, 3)
    assert metrics.route_warnings("payments") == []


def test_a_new_route_is_primed_for_every_variant_when_first_seen() -> None:
    """rate() needs a series at 0 before its first increase: the canary's first 5xx on a
    route that stable traffic has already brought in are counted in full."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics.in_registry(registry)
    stable_entry = entries_of("3.4.2")[0]
    metrics.record(
        tally([stable_entry], StaticLookup({"orders": ORDERS}), BOUNDS, upstream="orders")
    )
    values = parse_exposition(generate_latest(registry).decode())
    canary_5xx = (
        "kong_canary_gateway_requests_total",
        frozenset(
            {
                ("upstream", "orders"),
                ("variant", "canary"),
                ("route", "orders"),
                ("code_class", "5xx"),
            }
        ),
    )
    assert values[canary_5xx] == 0.0


def test_split_warns_while_routes_overflow_and_the_cap_is_a_setting(clock) -> None:  # type: ignore[no-untyped-def]
    kong = FakeKong({"orders": health_body("3.9.3")})
    app = make_app(kong, FLAVOUR["3.9.3"], clock, gateway_max_routes=1)
    app.extensions.pop(kong_log.EXTENSION)  # the app's own ingest, built from the settings
    try:
        with app.test_client() as client:
            template = entries_of("3.9.3")[0]
            batch = [with_route(template, {"name": n}) for n in ("orders", "refunds", "payouts")]
            posted = client.post(
                "/v1/kong-log?upstream=orders", data=json.dumps(batch), headers=auth(WRITE)
            )
            assert posted.status_code == 200, posted.get_data(as_text=True)
            view = client.get("/v1/upstreams/orders/split", headers=auth(WRITE))
            assert view.status_code == 200, view.get_data(as_text=True)
            warnings = [w for w in view.get_json()["warnings"] if "gateway_max_routes" in w]
            assert len(warnings) == 1 and "2 route(s) of orders" in warnings[0]
    finally:
        close_app(app)
