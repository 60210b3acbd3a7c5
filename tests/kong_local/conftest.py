"""Fixtures: local Kong servers on 127.0.0.1:0 that stop themselves after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sidecar.kong_local.server import RunningServer, serve_in_thread

StartKong = Callable[..., RunningServer]


@pytest.fixture
def start_kong() -> Iterator[StartKong]:
    """``start_kong(profile, **create_wsgi_app_kwargs)`` -> a server, stopped at teardown."""
    servers: list[RunningServer] = []

    def start(profile: str = "3.9", **kwargs: Any) -> RunningServer:
        server = serve_in_thread(profile, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client_for() -> Iterator[Callable[..., httpx.Client]]:
    clients: list[httpx.Client] = []

    def make(server: RunningServer, **kwargs: Any) -> httpx.Client:
        client = httpx.Client(base_url=server.admin_url, timeout=5.0, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
