"""``GET …/cohorts`` reads the main upstream once: its name and its lease marks come from the
same read (a second read cost a round trip and could pair one moment's name with another's
lease)."""

from __future__ import annotations

from sidecar.cohorts import CohortService
from sidecar.core.cohorts import CohortSpec, HeaderOverride
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import KongSettings
from sidecar.traffic import TrafficService
from tests.kong.conftest import seed


def test_the_cohorts_view_reads_the_main_upstream_once() -> None:
    with serve_in_thread("3.9", seed=seed("orders"), test_controls=True) as kong:
        settings = KongSettings(admin_url=kong.url)
        with build_http_client(settings) as http:
            http.post("/services", json={"name": "orders", "host": "orders"}).raise_for_status()
            traffic = TrafficService(KongAdmin(http))
            try:
                cohorts = CohortService(traffic)
                cohorts.set("orders", CohortSpec(header=HeaderOverride("X-Canary")), wait=None)
                since = len(kong.app.calls)
                view = cohorts.view("orders")
                reads = [c for c in kong.app.calls[since:] if c == ("GET", "/upstreams/orders")]
            finally:
                traffic.close()
    assert view["upstream"] == "orders" and view["cohorts"]["header"]["name"] == "X-Canary"
    assert view["lease"] is not None
    assert len(reads) == 1, kong.app.calls[since:]
