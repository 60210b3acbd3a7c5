"""Opening or closing the http-log window by hand takes the upstream's lock like any change,
so it cannot interleave with a split whose observer opens or closes the same window."""

from __future__ import annotations

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.upstream_locks import KongLocks
from tests.gateway.test_window import Env, env39  # noqa: F401  (the fixture)


def test_the_window_endpoints_wait_for_the_upstreams_lock(env39: Env) -> None:  # noqa: F811
    client = env39.sidecar(lock_wait=0.2)
    admin = KongAdmin(build_http_client(env39.app.extensions["kong_canary"].settings.kong))
    try:
        locks = KongLocks(admin)
        with locks.held(env39.upstream):  # another replica's change is under way
            for method in ("POST", "DELETE"):
                busy = client.request(method, f"/v1/upstreams/{env39.upstream}/gateway-metrics")
                assert busy.status_code == 503, busy.text
                assert busy.json()["error"]["code"] == "upstream_busy"
        assert env39.ours() == []  # nothing was attached meanwhile
        opened = client.post(f"/v1/upstreams/{env39.upstream}/gateway-metrics")
        assert opened.status_code == 200 and opened.json()["attached"] is True
    finally:
        admin.close()
