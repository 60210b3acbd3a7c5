"""A Kong-compatible server per profile, and raw Admin API access to arrange its services and
plugins around ``kong-canary preflight``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sidecar.kong_local.server import serve_in_thread

KONNECT_TOKEN = "kpat_preflight_token"
CONTROL_PLANE = "cp-local"


@dataclass
class Kong:
    profile: str
    url: str
    local: Any  # LocalKong: .calls, .faults
    http: httpx.Client
    env: dict[str, str] = field(default_factory=dict)  # settings for the CLI

    def service(self, name: str, host: str = "orders") -> dict[str, Any]:
        answer = self.http.post("/services", json={"name": name, "host": host})
        answer.raise_for_status()
        return answer.json()

    def route(self, service: dict[str, Any], **body: Any) -> dict[str, Any]:
        answer = self.http.post(f"/services/{service['id']}/routes", json=body)
        answer.raise_for_status()
        return answer.json()

    def plugin(self, service: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
        path = f"/services/{service['id']}/plugins" if service else "/plugins"
        answer = self.http.post(path, json={"name": "prometheus", **body})
        answer.raise_for_status()
        return answer.json()

    def plugins(self) -> list[dict[str, Any]]:
        return self.http.get("/plugins").json()["data"]


def start(profile: str) -> tuple[Kong, Any]:
    konnect = profile == "konnect"
    server = serve_in_thread(
        profile,
        seed={"upstreams": [{"name": "orders", "targets": []}]},
        konnect_token=KONNECT_TOKEN if konnect else None,
        test_controls=True,
    )
    base, headers, env = server.url, {}, {"KONG_CANARY_KONG_ADMIN_URL": server.url}
    if konnect:
        base += f"/v2/control-planes/{CONTROL_PLANE}/core-entities"
        headers["Authorization"] = f"Bearer {KONNECT_TOKEN}"
        env |= {
            "KONG_CANARY_KONG_FLAVOUR": "konnect",
            "KONG_CANARY_KONNECT_TOKEN": KONNECT_TOKEN,
            "KONG_CANARY_KONNECT_CONTROL_PLANE_ID": CONTROL_PLANE,
        }
    http = httpx.Client(base_url=base, headers=headers, timeout=10)
    return Kong(profile, server.url, server.app, http, env), server


@pytest.fixture(params=["3.9", "3.4", "2.8", "konnect"])
def kong(request: pytest.FixtureRequest) -> Iterator[Kong]:
    handle, server = start(request.param)
    try:
        yield handle
    finally:
        handle.http.close()
        server.stop()


@pytest.fixture
def kong39() -> Iterator[Kong]:
    handle, server = start("3.9")
    try:
        yield handle
    finally:
        handle.http.close()
        server.stop()
