"""Fixtures: local Kong clusters whose other nodes lag behind, on a clock the tests own.

One FakeClock drives both sides: the local servers judge "``lag`` seconds ago" by it and the
waiter sleeps by advancing it, so a 2 s propagation takes milliseconds of real time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from sidecar.api.openapi import document
from sidecar.app import close_app, create_app
from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong_local.server import RunningServer, serve_in_thread
from sidecar.propagation import Propagation
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.openapi_bodies import check_body

KONNECT_TOKEN = "kpat_test_token"
SEED = {
    "upstreams": [
        {
            "name": "orders",
            "targets": [{"target": "10.0.0.1:80", "weight": 100, "tags": ["variant=stable"]}],
        }
    ]
}


class FakeClock:
    """Monotonic and wall clock at once; ``sleep`` moves it instead of waiting."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    advance = sleep


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def kong_settings(server: RunningServer) -> KongSettings:
    if server.app.profile.konnect:
        return KongSettings(
            admin_url=server.url,
            flavour="konnect",
            konnect_token=KONNECT_TOKEN,
            konnect_control_plane_id=server.app.control_plane_id,
            read_timeout=2.0,
        )
    return KongSettings(admin_url=server.url, read_timeout=2.0)


class Cluster:
    """A running local Kong (and its other nodes), a KongAdmin on it and a waiter."""

    def __init__(self, server: RunningServer, clock: FakeClock) -> None:
        self.server = server
        self.clock = clock
        self.settings = kong_settings(server)
        self.http = build_http_client(self.settings)
        self.kong = KongAdmin(self.http, read_retries=0)
        self.waiters: list[Propagation] = []
        self.clients: list[httpx.Client] = [self.http]

    def waiter(self, *, nodes: tuple[str, ...] | None = None, **kwargs: Any) -> Propagation:
        """``nodes``: Admin URLs to check; default every node of a traditional cluster."""
        if nodes is None:
            nodes = tuple(self.server.node_urls) if len(self.server.node_urls) > 1 else ()
        waiter = Propagation(
            self.kong,
            self.settings,
            nodes=nodes,
            clock=self.clock,
            wall_clock=self.clock,
            sleep=self.clock.sleep,
            **kwargs,
        )
        self.waiters.append(waiter)
        return waiter

    def raw(self, url: str | None = None) -> httpx.Client:
        """Plain HTTP to a node (default: the one writes go to)."""
        headers = (
            {"Authorization": f"Bearer {KONNECT_TOKEN}"} if self.server.app.profile.konnect else {}
        )
        client = httpx.Client(base_url=url or self.server.admin_url, headers=headers, timeout=5)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for waiter in self.waiters:
            waiter.close()
        for client in self.clients:
            client.close()


StartCluster = Callable[..., Cluster]


@pytest.fixture
def start_cluster(clock: FakeClock) -> Iterator[StartCluster]:
    """``start_cluster(profile, nodes=…, lag=…, **serve_in_thread kwargs)``, stopped after."""
    clusters: list[Cluster] = []

    def start(profile: str = "3.9", **kwargs: Any) -> Cluster:
        kwargs.setdefault("seed", SEED)
        if profile == "konnect":
            kwargs.setdefault("konnect_token", KONNECT_TOKEN)
        server = serve_in_thread(profile, clock=clock, **kwargs)
        cluster = Cluster(server, clock)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.close()
        cluster.server.stop()


# ---- the sidecar in front of a two-node cluster whose second node is LAG s behind ----

TOKEN = ApiToken("spinnaker", "spinnaker-token-0123456789", "write")
LAG = 2.0
CANARY = {"split": {"stable": 90, "canary": 10}, "targets": {"canary": ["10.0.0.3:80"]}}


def _check(response: httpx.Response, doc: dict) -> None:
    path = response.request.url.path
    ops = next(
        o for p, o in doc["paths"].items() if re.fullmatch(re.sub(r"\{[^}]+\}", r"[^/]+", p), path)
    )
    declared = ops[response.request.method.lower()]["responses"][str(response.status_code)]
    schema = declared["content"]["application/json"]["schema"]
    check_body(doc, schema, response.json())


@dataclass
class Api:
    http: httpx.Client
    kong: httpx.Client
    clock: FakeClock

    def weights(self) -> dict[str, int]:
        data = self.kong.get("/upstreams/orders/targets").json()["data"]
        return {t["target"]: t["weight"] for t in data}


@pytest.fixture
def api(start_cluster: StartCluster, clock: FakeClock) -> Iterator[Api]:
    cluster = start_cluster("3.9", nodes=2, lag=LAG)
    settings = Settings(
        tokens=(TOKEN,),
        kong=cluster.settings,
        propagation_nodes=tuple(cluster.server.node_urls),
    )
    app = create_app(settings, sweep_leases=False, clock=clock)
    runtime = app.extensions["kong_canary"]
    assert isinstance(runtime.service.propagation, Propagation)  # wired by create_app
    assert runtime.service.propagation.nodes == settings.propagation_nodes
    runtime.service.propagation = cluster.waiter()  # the same, on the fake clock
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    doc = document()
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{server.server_port}",
        headers={"Authorization": f"Bearer {TOKEN.token}"},
        timeout=30,
        event_hooks={"response": [lambda r: (r.read(), _check(r, doc))]},
    )
    try:
        yield Api(http, cluster.raw(), clock)
    finally:
        http.close()
        server.shutdown()
        server.server_close()
        close_app(app)
