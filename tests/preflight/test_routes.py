"""``kong-canary preflight --upstream orders --routes a,b`` against the local Kong (3.9, 3.4, 2.8,
Konnect) and, for traffic, a real Prometheus with Kong's series backfilled into the last hour.

Sources (Kong/kong): ``kong/plugins/prometheus/exporter.lua`` (2.8.5, 3.4.2, 3.9.3: ``route``
label = route name, else id; ``service`` label = service name, else host), ``schema.lua``
(3.x: ``status_code_metrics``/``latency_metrics`` default false; 2.8: no such options) and the
plugin precedence route+service, route, service, global.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from sidecar.kayenta.library import load_library, prometheus_needs
from sidecar.kayenta.preflight import Requirement
from sidecar.kayenta.preflight_cli import preflight
from sidecar.kayenta.preflight_routes import (
    RouteFinding,
    find_routes,
    parse_routes,
    traffic_query,
)
from sidecar.kong.models import Flavour
from tests.kayenta.real_prometheus import serve_backfilled
from tests.preflight.conftest import Kong

ALL_ON = {"status_code_metrics": True, "latency_metrics": True}
REQ3 = Requirement.build(prometheus_needs(load_library()), Flavour.KONG_3, per_route=True)


def run(kong: Kong, *args: str) -> Result:
    return CliRunner().invoke(preflight, ["--upstream", "orders", *args], env=kong.env)


def arrange(kong: Kong) -> dict:
    """orders-svc (host orders) with routes ``refunds`` and one without a name; payments (host
    payments) with ``payouts``."""
    svc = kong.service("orders-svc")
    refunds = kong.route(svc, name="refunds", paths=["/refunds"])
    unnamed = kong.route(svc, paths=["/orders"])
    payments = kong.service("payments", host="payments")
    kong.route(payments, name="payouts", paths=["/payouts"])
    return {"svc": svc, "refunds": refunds, "unnamed": unnamed}


# ------------------------------------------------------------------ pure


def test_routes_are_parsed_from_commas_and_repeats():
    assert parse_routes(["refunds, payouts", "refunds", " ,x"]) == ("refunds", "payouts", "x")
    with pytest.raises(ValueError, match="at least one route"):
        parse_routes([" , "])


@given(st.lists(st.text(alphabet=st.sampled_from("ab ,\t"), max_size=8), min_size=1, max_size=5))
def test_parse_routes_keeps_every_named_route_once_in_order(raw):
    parts = [p.strip() for item in raw for p in item.split(",") if p.strip()]
    if not parts:
        with pytest.raises(ValueError):
            parse_routes(raw)
        return
    parsed = parse_routes(raw)
    assert list(parsed) == list(dict.fromkeys(parts))
    assert all(name and "," not in name and name == name.strip() for name in parsed)


def test_the_traffic_query_uses_kongs_label_values_and_escapes_them():
    service = {"id": "s", "name": None, "host": "orders"}
    route = {"id": "r-1", "name": 'we"ird'}
    assert traffic_query("kong_http_requests_total", service, route, "1h") == (
        'sum(increase(kong_http_requests_total{service="orders",route="we\\"ird"}[1h]))'
    )
    assert 'route="r-1"' in traffic_query("kong_http_status", service, {"id": "r-1"}, "5m")


def test_a_route_is_found_by_name_or_id_only_on_the_upstreams_services():
    svc = {"id": "s1", "name": "orders-svc", "host": "orders"}
    other = {"id": "s2", "name": "payments", "host": "payments"}
    routes = {"s1": [{"id": "r1", "name": "refunds"}, {"id": "r2", "name": None}]}
    plugins = [{"id": "p", "name": "prometheus", "service": {"id": "s1"}, "config": ALL_ON}]
    by_name, by_id, absent = find_routes(
        ["refunds", "r2", "payouts"], "orders", [svc, other], routes, REQ3, plugins
    )
    assert (by_name.route["id"], by_name.scope, by_name.ok) == ("r1", "service", True)
    assert (by_id.route["id"], by_id.ok) == ("r2", True)
    assert absent == RouteFinding("payouts") and not absent.ok


def test_no_requests_is_a_problem_and_says_why_when_kong_records_none():
    svc, route = {"id": "s1", "name": "orders-svc"}, {"id": "r1", "name": "refunds"}
    quiet = RouteFinding("refunds", route, svc, {"id": "p"}, "service", (), requests=0.0,
                         window="1h")  # fmt: skip
    assert quiet.problems == ["no requests in Kong's metrics over the last 1h"]
    blind = RouteFinding("refunds", route, svc, {"id": "p"}, "service",
                         ("status_code_metrics",), requests=0.0, window="1h")  # fmt: skip
    assert "Kong records none without status_code_metrics" in blind.problems[1]


# ------------------------------------------------------------------ CLI on the local Kong


def test_routes_are_checked_for_place_coverage_and_the_label_to_pass(kong):
    made = arrange(kong)
    unnamed_id = made["unnamed"]["id"]
    first = run(kong, "--routes", f"refunds,{unnamed_id},payouts,nope")
    assert first.exit_code == 1, first.output
    out = first.output
    family = "3x" if kong.profile != "2.8" else "2x"
    assert (
        f"configs: kong-{family}-service-per-variant-route, kong-{family}-variant-label-route\n"
        in out
    )
    assert "MISSING route refunds: service orders-svc: no prometheus plugin runs" in out
    assert (
        "MISSING route payouts: is a route of service payments (host 'payments'), "
        "which does not proxy to the upstream" in out
    )
    assert "MISSING route nope: no route with this name or id on the upstream's services" in out
    assert "pass extendedScopeParams.route=refunds" in out
    assert f"pass extendedScopeParams.route={unnamed_id}" in out  # no name: Kong labels the id
    kong.plugin(made["svc"], config=ALL_ON if kong.profile != "2.8" else {})
    good = run(kong, "--routes", f"refunds,{unnamed_id}", "--output", "json")
    assert good.exit_code == 0, good.output
    doc = json.loads(good.output)
    assert [(r["route"], r["extended_scope_params_route"], r["ok"]) for r in doc["routes"]] == [
        ("refunds", "refunds", True), (unnamed_id, unnamed_id, True),
    ]  # fmt: skip
    assert doc["before"]["configs"] == [
        f"kong-{family}-service-per-variant-route", f"kong-{family}-variant-label-route",
    ]  # fmt: skip


def test_a_route_scoped_plugin_without_the_options_is_named_and_fixed(kong39):
    made = arrange(kong39)
    kong39.plugin(made["svc"], config=ALL_ON)
    scoped = kong39.plugin(
        route={"id": made["refunds"]["id"]}, config={"status_code_metrics": True}
    )
    first = run(kong39, "--routes", "refunds")
    assert first.exit_code == 1
    assert (
        f"MISSING route refunds: service orders-svc: prometheus plugin {scoped['id']} (route) "
        "lacks latency_metrics" in first.output
    )
    fixed = run(kong39, "--routes", "refunds", "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert (
        f"route refunds: ok, service orders-svc, recorded by prometheus plugin {scoped['id']} "
        "(route)" in fixed.output
    )
    after = {p["id"]: p for p in kong39.plugins()}[scoped["id"]]
    assert after["config"]["latency_metrics"] is True


def test_bad_route_options_cannot_be_checked_and_exit_2(kong39):
    arrange(kong39)
    assert run(kong39, "--routes", " , ").exit_code == 2
    alone = run(kong39, "--prometheus-url", "http://127.0.0.1:9")
    assert alone.exit_code == 2 and "name the routes too" in alone.output
    window = run(kong39, "--routes", "refunds", "--traffic-window", "an hour")
    assert window.exit_code == 2 and "not a PromQL duration" in window.output
    down = run(kong39, "--routes", "refunds", "--prometheus-url", "http://127.0.0.1:9")
    assert down.exit_code == 2 and "Prometheus:" in down.output


# ------------------------------------------------------------------ traffic on a real Prometheus


def _kong_series(profile: str, route: str, per_scrape: int, now: int) -> list[str]:
    """Kong's request counter for (orders-svc, route) over the last 50 minutes, as the
    exporter spells it (labels as in tests/fixtures/kong/kong-*-metrics.txt)."""
    lines = []
    for i, ts in enumerate(range(now - 3000, now - 30, 30)):
        if profile == "2.8":
            labels = f'service="orders-svc",route="{route}",code="200"'
            lines.append(f"kong_http_status{{{labels}}} {1 + i * per_scrape} {ts}")
        else:
            labels = (
                f'service="orders-svc",route="{route}",code="200",source="service",'
                'workspace="default",consumer=""'
            )
            lines.append(f"kong_http_requests_total{{{labels}}} {1 + i * per_scrape} {ts}")
    return lines


@pytest.mark.parametrize("profile", ["3.9", "2.8"])
def test_a_route_without_requests_in_kongs_metrics_is_a_finding(profile, tmp_path: Path):
    from tests.preflight.conftest import start

    kong, server = start(profile)
    try:
        made = arrange(kong)
        kong.plugin(made["svc"], config=ALL_ON if profile != "2.8" else {})
        unnamed_id = made["unnamed"]["id"]
        now = int(time.time())
        lines = _kong_series(profile, "refunds", 12, now) + _kong_series(
            profile, unnamed_id, 0, now
        )  # the unnamed route's counter exists but stays flat
        text = "\n".join(sorted(lines, key=lambda line: int(line.rsplit(" ", 1)[1])))
        with serve_backfilled(tmp_path, text + "\n# EOF\n") as prom:
            url = str(prom.base_url).rstrip("/")
            busy = run(kong, "--routes", "refunds", "--prometheus-url", url)
            idle = run(kong, "--routes", f"refunds,{unnamed_id}", "--prometheus-url", url,
                       "--traffic-window", "30m", "--output", "json")  # fmt: skip
    finally:
        kong.http.close()
        server.stop()
    assert busy.exit_code == 0, busy.output
    assert "route refunds: ok, service orders-svc" in busy.output
    assert "requests in 1h" in busy.output
    assert idle.exit_code == 1, idle.output
    refunds, unnamed = json.loads(idle.output)["routes"]
    assert refunds["ok"] and refunds["requests"] > 500 and refunds["window"] == "30m"
    assert (unnamed["ok"], unnamed["requests"]) == (False, 0.0)
    assert unnamed["problems"] == ["no requests in Kong's metrics over the last 30m"]
