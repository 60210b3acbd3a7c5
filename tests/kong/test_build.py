"""``build_kong``: the client every part of the sidecar uses, its calls counted as the metric's
help text says (by method and HTTP status class)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from sidecar.kong.build import build_kong
from sidecar.kong.errors import KongNotFound
from sidecar.kong_local.server import serve_in_thread
from sidecar.metrics import KONG_REQUESTS
from sidecar.settings import KongSettings, Settings

METRIC = "kong_canary_kong_requests_total"


def _count(method: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(METRIC, {"method": method, "outcome": outcome})
    return value or 0.0


def test_build_kong_should_count_answers_by_method_and_status_class() -> None:
    server = serve_in_thread("3.9")
    kong = build_kong(Settings(kong=KongSettings(admin_url=server.url, read_retries=0)))
    before = _count("GET", "2xx"), _count("GET", "4xx")
    try:
        kong.info()
        with pytest.raises(KongNotFound):
            kong.upstream("no-such-upstream")
    finally:
        kong.close()
        server.stop()
    assert (_count("GET", "2xx") - before[0], _count("GET", "4xx") - before[1]) == (1, 1)
    for outcome in ("2xx", "4xx"):
        assert outcome in KONG_REQUESTS._documentation  # the help names the values it takes


def test_build_kong_should_refuse_settings_without_an_admin_url() -> None:
    with pytest.raises(ValueError, match="no Kong admin URL"):
        build_kong(Settings())
