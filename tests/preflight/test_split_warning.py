"""``GET /v1/upstreams/{u}/split`` warns when Kong's Prometheus plugin would leave the Kayenta
configs blind, checking Kong at most once per TTL per upstream and never failing the view."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.app import close_app, create_app
from sidecar.kayenta.library import load_rendered
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.preflight.conftest import Kong, start

TOKEN = "preflight-test-token-0123456789"
TTL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup() -> Iterator[tuple[Kong, Any, Clock]]:
    kong, server = start("3.9")
    clock = Clock()
    settings = Settings(
        tokens=(ApiToken("ci", TOKEN, "read"),), kong=KongSettings(admin_url=kong.url)
    )
    app = create_app(settings, sweep_leases=False, clock=clock)
    try:
        yield kong, app.test_client(), clock
    finally:
        close_app(app)
        kong.http.close()
        server.stop()


def warnings(client: Any) -> list[str]:
    answer = client.get("/v1/upstreams/orders/split", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.get_json()
    return [w for w in answer.get_json()["warnings"] if w.startswith("Kong metrics for")]


def plugin_reads(kong: Kong) -> int:
    """The warning's plugin reads (the split view's cohorts member reads its own, tagged)."""
    return sum(
        1
        for m, p in kong.local.calls
        if m == "GET" and p.startswith("/plugins") and "kong-canary-cohorts" not in p
    )


def test_no_service_no_warning(setup):
    kong, client, _ = setup
    kong.service("payments", host="payments")
    assert warnings(client) == []
    assert plugin_reads(kong) == 1  # it did look


def test_the_warning_comes_and_goes_with_the_plugin_within_the_ttl(setup):
    kong, client, clock = setup
    kong.service("orders-svc")
    (first,) = warnings(client)
    assert "service orders-svc: no Prometheus plugin runs" in first
    assert "gateway_5xx_ratio" in first and "--upstream orders --fix" in first
    reads = plugin_reads(kong)
    kong.plugin(config={"status_code_metrics": True, "latency_metrics": True})
    clock.now += TTL - 1
    assert warnings(client) == [first]  # cached: Kong not asked again
    assert plugin_reads(kong) == reads
    clock.now += 2
    assert warnings(client) == []
    assert plugin_reads(kong) == reads + 1


def test_a_kong_error_on_plugins_leaves_the_view_alone(setup):
    kong, client, _ = setup
    kong.service("orders-svc")
    kong.local.faults.fail(mode="500", methods=["GET"], path_contains="/plugins")
    assert warnings(client) == []
    assert kong.local.faults.pending == 0  # the fault fired: the check did run and failed


def test_the_warning_names_only_the_configs_that_lack_data(setup):
    """The sidecar-gateway config's metrics share names with the Kong configs' (issue 15):
    the warning names the Kong configs, never the one fed by the sidecar's own series."""
    kong, client, _ = setup
    kong.service("orders-svc")
    (first,) = warnings(client)
    kong_configs = [n for n in load_rendered() if n.startswith("kong-3x")]
    assert kong_configs and all(name in first for name in kong_configs)
    assert "kong-canary-sidecar-gateway" not in first
    assert "do not need this plugin" in first
