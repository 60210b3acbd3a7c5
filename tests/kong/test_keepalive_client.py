"""Kong (or a load balancer in front of it) closing an idle kept-alive connection must not
turn the sidecar's next call into an error: a write on such a connection would be an
ambiguous failure (undone, 502) for a change that never reached Kong."""

from __future__ import annotations

import socket
import time

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import KongSettings

SEED = {"upstreams": [{"name": "orders", "targets": [{"target": "10.0.0.1:80", "weight": 5}]}]}


def test_a_connection_the_server_closed_while_idle_is_not_reused(monkeypatch):
    connects = []
    real_connect = socket.socket.connect

    def counting(sock: socket.socket, address: object) -> None:
        connects.append(address)
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    with serve_in_thread("3.9", seed=SEED, idle_timeout=0.2) as server:
        http = build_http_client(KongSettings(admin_url=server.url))
        kong = KongAdmin(http, read_retries=0)  # a retry must not be what saves it
        try:
            assert kong.update_target("orders", "10.0.0.1:80", weight=6).weight == 6
            time.sleep(0.6)  # the server has closed the idle connection by now
            assert kong.update_target("orders", "10.0.0.1:80", weight=7).weight == 7
            assert kong.upstream("orders").name == "orders"
        finally:
            kong.close()
    writes = [c for c in server.app.calls if c[0] == "PATCH"]
    assert len(writes) == 2  # each write sent once
    assert len(connects) == 2  # the first connection was closed by the server, not reused
