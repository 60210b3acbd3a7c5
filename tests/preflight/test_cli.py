"""``kong-canary preflight`` against the Kong-compatible server: 3.9, 3.4, 2.8 and Konnect.

The local server models the Prometheus plugin's schema per version
(``kong/plugins/prometheus/schema.lua``: 2.8 only has ``per_consumer``; 3.x adds the
``*_metrics`` switches, default false), PATCH merging nested records, and Konnect's PUT-only
plugin updates.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from sidecar.kayenta.preflight_cli import preflight
from tests.preflight.conftest import Kong

OPTIONS = ("status_code_metrics", "latency_metrics")


def run(kong: Kong, *args: str) -> Result:
    return CliRunner().invoke(preflight, ["--upstream", "orders", *args], env=kong.env)


def is_3x(kong: Kong) -> bool:
    return kong.profile != "2.8"


def test_an_uncovered_service_is_reported_then_fixed_then_clean(kong):
    service = kong.service("orders-svc")
    kong.service("payments", host="payments")
    first = run(kong)
    assert first.exit_code == 1, first.output
    assert "MISSING service orders-svc: no prometheus plugin runs" in first.output
    assert "run again with --fix" in first.output
    assert kong.plugins() == []  # a check writes nothing
    fixed = run(kong, "--fix")
    assert fixed.exit_code == 0, fixed.output
    (created,) = kong.plugins()
    assert created["service"] == {"id": service["id"]}
    assert "managed-by=kong-canary" in created["tags"]
    if is_3x(kong):
        assert all(created["config"][o] is True for o in OPTIONS)
        assert created["config"]["per_consumer"] is False
    else:
        assert created["config"] == {"per_consumer": False}
        assert "always records status codes and latencies" in fixed.output
    again = run(kong)
    assert again.exit_code == 0 and again.output.rstrip().endswith("result: ok")


def test_a_global_plugin_gets_only_the_missing_option_and_no_second_plugin(kong):
    kong.service("orders-svc")
    if not is_3x(kong):  # 2.8: a global plugin records everything; there is nothing to turn on
        kong.plugin()
        result = run(kong, "--fix")
        assert result.exit_code == 0 and "fix" not in result.output.replace("--fix", "")
        assert [m for m, _ in kong.local.calls if m != "GET"] == ["POST", "POST"]  # arranging
        return
    config = {"status_code_metrics": True, "bandwidth_metrics": True}
    glob = kong.plugin(config=config)
    result = run(kong, "--output", "json")
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert [g["missing"] for g in doc["before"]["gaps"]] == [["latency_metrics"]]
    assert doc["fixes"] == [
        {"action": "update", "plugin": glob["id"], "service": doc["before"]["services"][0],
         "scope": "global", "options": ["latency_metrics"]},
    ]  # fmt: skip
    assert run(kong, "--fix").exit_code == 0
    (after,) = kong.plugins()
    assert after["id"] == glob["id"] and after["service"] is None
    assert {k: after["config"][k] for k in (*OPTIONS, "bandwidth_metrics")} == {
        "status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True,
    }  # fmt: skip
    method = "PUT" if kong.profile == "konnect" else "PATCH"
    assert any(m == method and p.endswith(f"/plugins/{glob['id']}") for m, p in kong.local.calls)


def test_a_disabled_service_plugin_is_enabled_rather_than_duplicated(kong):
    service = kong.service("orders-svc")
    off = kong.plugin(service, enabled=False)
    result = run(kong)
    assert result.exit_code == 1
    assert f"prometheus plugin {off['id']} is disabled" in result.output
    fixed = run(kong, "--fix")
    assert fixed.exit_code == 0, fixed.output
    (plugin,) = kong.plugins()
    assert plugin["id"] == off["id"] and plugin["enabled"] is True
    assert plugin["service"] == {"id": service["id"]}
    if is_3x(kong):
        assert all(plugin["config"][o] for o in OPTIONS)


def test_a_service_plugin_without_options_beats_a_complete_global_one(kong39):
    kong = kong39
    service = kong.service("orders-svc")
    kong.plugin(config=dict.fromkeys(OPTIONS, True))
    mine = kong.plugin(service, config={"per_consumer": True})
    result = run(kong)
    assert result.exit_code == 1
    assert f"prometheus plugin {mine['id']} (service) lacks status_code_metrics" in result.output
    assert run(kong, "--fix").exit_code == 0
    fixed = next(p for p in kong.plugins() if p["id"] == mine["id"])
    assert fixed["config"]["per_consumer"] is True  # left as it was: PATCH merges the record


def test_only_the_chosen_configs_are_checked(kong39):
    kong = kong39
    kong.service("orders-svc")
    kong.plugin(config={"status_code_metrics": True})
    assert run(kong).exit_code == 1
    chosen = run(kong, "--canary-config", "kong-3x-service-per-variant", "--output", "json")
    assert json.loads(chosen.output)["before"]["configs"] == ["kong-3x-service-per-variant"]
    wrong = run(kong, "--canary-config", "kong-2x-variant-label")
    assert wrong.exit_code == 1 and "Kong 2.x metric names" in wrong.output
    unknown = run(kong, "--canary-config", "app-otel-http-server")
    assert unknown.exit_code == 2 and "no Kong Prometheus config named" in unknown.output


def test_no_service_for_the_upstream_is_a_failure_nothing_can_fix(kong39):
    kong39.service("payments", host="payments")
    result = run(kong39, "--fix")
    assert result.exit_code == 1
    assert "no Kong service has host 'orders'" in result.output
    assert kong39.plugins() == []


def test_what_cannot_be_checked_exits_2(kong39):
    missing = CliRunner().invoke(preflight, ["--upstream", "nope"], env=kong39.env)
    assert missing.exit_code == 2 and "Kong has no upstream 'nope'" in missing.output
    nowhere = CliRunner().invoke(
        preflight,
        ["--upstream", "orders", "--kong-admin-url", "http://127.0.0.1:9"],
        env={"KONG_CANARY_KONG_READ_RETRIES": "0"},
    )
    assert nowhere.exit_code == 2 and "Kong:" in nowhere.output
    bad: dict[str, Any] = {**kong39.env, "KONG_CANARY_KONG_FLAVOUR": "4.x"}
    settings = CliRunner().invoke(preflight, ["--upstream", "orders"], env=bad)
    assert settings.exit_code == 2 and "kong_flavour" in settings.output
    none = CliRunner().invoke(preflight, ["--upstream", "orders"], env={})
    assert none.exit_code == 2 and "no Kong Admin API" in none.output


def test_fix_on_a_read_only_node_exits_2_and_writes_nothing():
    """DB-less nodes refuse Admin API writes (405); the fix is refused before sending. The
    service is put in the node's store directly, as a declarative config would."""
    from sidecar.kong_local.service_routes import entities
    from tests.preflight.conftest import start

    kong, server = start("dbless")
    try:
        with kong.local.store.lock:
            ws = kong.local.store.workspace("default")
            sid = "5a7c2d3e-0000-4000-8000-000000000001"
            entities(ws).services[sid] = {"id": sid, "name": "orders-svc", "host": "orders"}
        result = CliRunner().invoke(preflight, ["--upstream", "orders", "--fix"], env=kong.env)
        writes = [c for c in kong.local.calls if c[0] != "GET"]
    finally:
        kong.http.close()
        server.stop()
    assert result.exit_code == 2, result.output
    assert "read-only" in result.output
    assert writes == []


def test_the_result_line_counts_what_made_the_check_fail(kong):
    """No service proxies to the upstream: exit 1, and the last line must not read
    "0 gap(s)" as if nothing were wrong."""
    nothing = run(kong)
    assert nothing.exit_code == 1, nothing.output
    assert "nothing proxies to it" in nothing.output
    assert nothing.output.rstrip().endswith("result: 1 finding(s)"), nothing.output
    kong.service("orders-svc")
    uncovered = run(kong)
    assert uncovered.exit_code == 1
    assert uncovered.output.rstrip().endswith("result: 1 finding(s)"), uncovered.output
