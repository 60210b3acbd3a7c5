"""Fixtures: local Kong clusters whose other nodes lag behind, on a clock the tests own.

One FakeClock drives both sides: the local servers judge "``lag`` seconds ago" by it and the
waiter sleeps by advancing it, so a 2 s propagation takes milliseconds of real time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong_local.server import RunningServer, serve_in_thread
from sidecar.propagation import Propagation
from sidecar.settings import KongSettings

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
