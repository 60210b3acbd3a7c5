"""Which Prometheus plugin records an upstream's requests, and what is missing. Pure.

Sources (Kong/kong): ``kong/plugins/prometheus/schema.lua`` (3.x: ``status_code_metrics``,
``latency_metrics``, ``bandwidth_metrics``, ``upstream_health_metrics``, ``per_consumer``, all
default false), ``kong/plugins/prometheus/handler.lua`` (the log phase reads the running
instance's own ``conf``: ``status_code`` only with ``status_code_metrics``, ``latencies`` only
with ``latency_metrics``), and Kong's plugin precedence (route+service, route, service, global
when no consumer is involved; disabled plugins are not loaded).
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.kayenta.library import load_library, prometheus_needs
from sidecar.kayenta.preflight import Requirement, analyse, plan_fixes, split_warnings
from sidecar.kong.models import Flavour

NEEDS = prometheus_needs(load_library())
REQ3 = Requirement.build(NEEDS, Flavour.KONG_3)
REQ2 = Requirement.build(NEEDS, Flavour.KONG_2)
SVC = {"id": "s1", "name": "orders-svc", "host": "orders"}
OTHER = {"id": "s2", "name": "payments", "host": "payments"}
ALL_ON = {"status_code_metrics": True, "latency_metrics": True}


def plugin(pid: str, *, service=None, route=None, consumer=None, enabled=True, **config):
    return {
        "id": pid,
        "name": "prometheus",
        "enabled": enabled,
        "service": {"id": service} if service else None,
        "route": {"id": route} if route else None,
        "consumer": {"id": consumer} if consumer else None,
        "config": {"per_consumer": False, **config},
    }


def test_the_library_says_which_option_feeds_which_metric():
    three = NEEDS["kong-3x-service-per-variant"]
    assert three.kong == "3.x"
    assert dict(three.options) == {
        "status_code_metrics": ("gateway_5xx_ratio",),
        "latency_metrics": ("gateway_p99_request_latency_ms", "gateway_p99_upstream_latency_ms"),
    }
    assert dict(NEEDS["kong-2x-variant-label"].options) == {}  # 2.8: nothing to switch on
    assert NEEDS["kong-2x-variant-label"].kong == "2.x"
    assert not {"app-micrometer-http-server", "kong-canary-sidecar-gateway"} & set(NEEDS)
    assert all("per_consumer" not in n.options for n in NEEDS.values())


def test_requirement_follows_the_kong_it_talks_to():
    assert REQ3.configs == (
        "kong-3x-service-per-variant", "kong-3x-service-per-variant-route",
        "kong-3x-variant-label", "kong-3x-variant-label-route",
    )  # fmt: skip
    assert Requirement.build(NEEDS, Flavour.KONNECT) == REQ3
    assert REQ2.configs == (
        "kong-2x-service-per-variant", "kong-2x-service-per-variant-route",
        "kong-2x-variant-label", "kong-2x-variant-label-route",
    )  # fmt: skip
    assert REQ2.options == {}
    with pytest.raises(ValueError, match="app-micrometer-http-server"):
        Requirement.build(NEEDS, Flavour.KONG_3, ["app-micrometer-http-server"])


def test_a_2x_config_against_a_3x_kong_is_reported_not_ok():
    req = Requirement.build(NEEDS, Flavour.KONG_3, ["kong-2x-variant-label"])
    report = analyse("orders", req, [SVC], [plugin("g", **ALL_ON)])
    assert report.gaps == [] and not report.ok
    assert any("Kong 2.x metric names" in n for n in report.notes)


def test_no_plugin_at_all_is_a_gap_with_every_option():
    report = analyse("orders", REQ3, [SVC, OTHER], [plugin("p", service="s2", **ALL_ON)])
    assert [(g.service["id"], g.plugin, g.missing) for g in report.gaps] == [
        ("s1", None, ("status_code_metrics", "latency_metrics"))
    ]
    assert not report.ok


@pytest.mark.parametrize(
    ("plugins", "runs"),
    [
        ([plugin("g", **ALL_ON)], "g"),
        ([plugin("g"), plugin("s", service="s1", **ALL_ON)], "s"),
        ([plugin("g", **ALL_ON), plugin("s", service="s1")], "s"),  # most specific wins
        ([plugin("g", **ALL_ON), plugin("s", service="s1", enabled=False)], "g"),
        ([plugin("g", **ALL_ON), plugin("c", service="s1", consumer="u1")], "g"),
    ],
)
def test_the_most_specific_enabled_plugin_decides(plugins, runs):
    report = analyse("orders", REQ3, [SVC], plugins)
    gap_plugins = {g.plugin["id"] for g in report.gaps if g.plugin}
    covered = not report.gaps
    ran = next(p for p in plugins if p["id"] == runs)
    assert covered == bool(ran["config"].get("status_code_metrics"))
    assert gap_plugins <= {runs}


def test_routes_are_judged_one_by_one_when_a_route_plugin_exists():
    plugins = [plugin("r1", route="route-1", **ALL_ON), plugin("g", status_code_metrics=True)]
    routes = {"s1": [{"id": "route-1", "name": "fast"}, {"id": "route-2", "name": "slow"}]}
    report = analyse("orders", REQ3, [SVC], plugins, routes)
    assert [(g.route["name"], g.plugin["id"], g.scope, g.missing) for g in report.gaps] == [
        ("slow", "g", "global", ("latency_metrics",))
    ]
    both = [plugin("rs", route="route-2", service="s1"), plugin("r", route="route-2", **ALL_ON)]
    report = analyse("orders", REQ3, [SVC], both, routes)
    assert {(g.route["name"], g.plugin and g.scope) for g in report.gaps} == {
        ("fast", None),  # the route+service plugin does not cover another route
        ("slow", "route+service"),  # it beats the route-only plugin that has the options
    }


def test_notes_name_disabled_and_consumer_scoped_plugins():
    plugins = [
        plugin("off", service="s1", enabled=False),
        plugin("c", consumer="u1", **ALL_ON),
        plugin("elsewhere", service="s2", enabled=False),
    ]
    notes = analyse("orders", REQ3, [SVC, OTHER], plugins).notes
    assert any("off is disabled" in n for n in notes)
    assert any("scoped to consumer u1" in n for n in notes)
    assert not any("elsewhere" in n for n in notes)


def test_kong_2x_only_needs_coverage_and_says_why():
    covered = analyse("orders", REQ2, [SVC], [plugin("g")])
    assert covered.ok and any("always records" in n for n in covered.notes)
    uncovered = analyse("orders", REQ2, [SVC], [])
    assert [(g.plugin, g.missing) for g in uncovered.gaps] == [(None, ())]
    (fix,) = plan_fixes(uncovered, [])
    assert (fix.action, fix.options) == ("create", ())


def test_fixes_turn_on_only_what_the_running_plugin_lacks():
    plugins = [plugin("g", status_code_metrics=True)]
    report = analyse("orders", REQ3, [SVC, {**OTHER, "host": "orders"}], plugins)
    (fix,) = plan_fixes(report, plugins)  # one write for the one global plugin, not two
    assert (fix.action, fix.plugin["id"], fix.options) == ("update", "g", ("latency_metrics",))
    assert "global, so every service" in fix.describe()


def test_fixes_reenable_a_disabled_service_plugin_instead_of_a_second_one():
    """Kong allows one plugin of a name per scope (cache_key name, route, service, consumer):
    creating another on the service would be a 409."""
    plugins = [plugin("off", service="s1", enabled=False, latency_metrics=True)]
    report = analyse("orders", REQ3, [SVC], plugins)
    (fix,) = plan_fixes(report, plugins)
    assert (fix.action, fix.plugin["id"]) == ("update", "off")
    assert fix.options == ("status_code_metrics", "latency_metrics")
    assert fix.describe().startswith("enable prometheus plugin off (service)")


def test_split_warnings_name_the_service_the_plugin_and_the_blind_metrics():
    report = analyse("orders", REQ3, [SVC], [plugin("g", status_code_metrics=True)])
    (warning,) = split_warnings(report)
    assert "service orders-svc" in warning and "plugin g (global) lacks latency_metrics" in warning
    assert "gateway_p99_request_latency_ms" in warning and "5xx" not in warning
    assert "kong-canary preflight --upstream orders --fix" in warning
    assert split_warnings(analyse("orders", REQ3, [OTHER], [])) == []  # nothing proxies to it


def _names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def test_report_json_shape():
    doc = analyse("orders", REQ3, [SVC], []).to_dict()
    assert doc["ok"] is False and _names(doc["services"]) == ["orders-svc"]
    assert doc["gaps"][0]["plugin"] is None
    assert doc["required_options"]["latency_metrics"] == [
        f"{config}: gateway_p99_{histogram}_latency_ms"
        for config in REQ3.configs
        for histogram in ("request", "upstream")
    ]
