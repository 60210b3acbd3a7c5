"""``GET …/split`` with cohorts and gateway metrics on: ``served`` gives the shares each
variant actually served (a cohort moves the canary's real share away from the split's)."""

from __future__ import annotations

import uuid

import httpx

from sidecar.api.cohorts import served_counts
from sidecar.app import close_app, create_app
from sidecar.gateway.metrics import REQUESTS
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.api.conftest import OpenApiChecker

SPINNAKER = ApiToken("spinnaker", "spinnaker-token-0123456789", "write")
INGEST = ApiToken("kong-ingest", "kong-ingest-token-0123456789", "write")


def test_split_view_reports_the_shares_served_per_variant() -> None:
    name = f"served-{uuid.uuid4().hex[:8]}"
    seed = {"upstreams": [{"name": name, "targets": [{"target": "10.0.0.1:80", "weight": 100}]}]}
    with serve_in_thread("3.9", seed=seed) as server, httpx.Client(base_url=server.url) as kong:
        kong.post("/services", json={"name": name, "host": name}).raise_for_status()
        settings = Settings(
            tokens=(SPINNAKER, INGEST),
            kong=KongSettings(admin_url=server.url),
            gateway_metrics=True,
            gateway_ingest_url="http://kong-canary.canary.svc:8080",
            gateway_ingest_token=INGEST.token,
        )
        app = create_app(settings, sweep_leases=False)
        checker = OpenApiChecker()
        try:
            with httpx.Client(
                transport=httpx.WSGITransport(app=app),
                base_url="http://s",
                headers={"Authorization": f"Bearer {SPINNAKER.token}"},
                event_hooks={"response": [lambda r: (r.read(), checker.check(r))]},
            ) as client:
                before = client.get(f"/v1/upstreams/{name}/split").json()
                assert before["cohorts"] is None and "served" not in before
                body = {"never_canary": None, "header": {"name": "X-Canary"}}
                assert client.put(f"/v1/upstreams/{name}/cohorts", json=body).status_code == 200
                # what the http-log ingest counts (sidecar.gateway.metrics) for this upstream
                REQUESTS.labels(name, "stable", "orders", "2xx").inc(975)
                REQUESTS.labels(name, "canary", "orders", "2xx").inc(20)
                REQUESTS.labels(name, "canary", "refunds", "5xx").inc(5)
                view = client.get(f"/v1/upstreams/{name}/split").json()
        finally:
            close_app(app)
    assert view["cohorts"]["header"]["name"] == "X-Canary"
    assert view["served"] == {"stable": 97.5, "canary": 2.5}
    assert served_counts(REQUESTS, "no-such-upstream") == {}
