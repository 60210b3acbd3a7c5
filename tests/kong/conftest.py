"""``kong_env``: one contract suite, run against every local-server profile and a real Kong.

Local params start ``sidecar.kong_local.server.serve_in_thread`` per test (seeded, so a test
never sees another's writes). The ``real`` param talks to ``KONG_ADMIN_URL`` (optional
``KONG_ADMIN_TOKEN``, ``KONG_WORKSPACE``), creates a uniquely named upstream and deletes it
afterwards; it is skipped, visibly, when that variable is not set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sidecar.kong.client import KongAdmin
from sidecar.kong.http import build_http_client
from sidecar.kong.models import Flavour
from sidecar.settings import KongSettings
from tests.kong.fakes import Sleeps

SEED_TARGETS = (
    ("10.0.0.1:80", 100, ["variant=stable"]),
    ("10.0.0.2:80", 0, ["variant=baseline"]),
    ("10.0.0.3:80", 0, ["variant=canary"]),
)
RBAC_TOKEN = "rbac-secret"
KONNECT_TOKEN = "kpat_local"
CONTROL_PLANE = "cp-local"


@dataclass(frozen=True)
class Param:
    profile: str | None  # None = real Kong
    expected_flavour: Flavour | None
    writable: bool
    rbac: bool = False
    workspace: str | None = None
    konnect: bool = False


PARAMS = {
    "kong-2.8": Param("2.8", Flavour.KONG_2, True),
    "kong-3.4": Param("3.4", Flavour.KONG_3, True),
    "kong-3.9": Param("3.9", Flavour.KONG_3, True),
    "kong-3.4-rbac-workspace": Param("3.4", Flavour.KONG_3, True, rbac=True, workspace="SRE"),
    "konnect": Param("konnect", Flavour.KONNECT, True, konnect=True),
    "dbless": Param("dbless", Flavour.KONG_3, False),
    "real": Param(None, None, True),
}
LOCAL = [name for name, p in PARAMS.items() if p.profile is not None]


@dataclass
class KongEnv:
    """What a contract test gets: a client, the upstream it may use, and a way to peek."""

    name: str
    param: Param
    settings: KongSettings
    admin: KongAdmin
    raw: httpx.Client  # same base URL and credentials, for setup and for checks behind the client
    upstream: str
    server: Any | None  # RunningServer (has .app.faults) for local params; None for real Kong
    sleeps: Sleeps

    @property
    def writable(self) -> bool:
        return self.param.writable if self.server is not None else self.admin.info().writable

    def weights(self) -> dict[str, int]:
        """Read weights with raw HTTP, so a check does not trust the client under test."""
        ref = self.upstream
        if self.param.konnect:
            ref = self.raw.get(f"/upstreams/{self.upstream}").json()["id"]
        body = self.raw.get(f"/upstreams/{ref}/targets", params={"size": 1000}).json()
        return {row["target"]: row["weight"] for row in body["data"]}


def seed(name: str, targets=SEED_TARGETS) -> dict:
    return {
        "upstreams": [
            {
                "name": name,
                "targets": [{"target": t, "weight": w, "tags": tags} for t, w, tags in targets],
            }
        ]
    }


def _server_module():
    try:
        from sidecar.kong_local import server
    except ImportError as exc:  # another engineer is still building it
        pytest.skip(f"sidecar.kong_local.server not available yet: {exc}")
    return server


def start_local(name: str, *, seed_data: dict | None, **extra: Any):
    """Start the local server for a param (context manager)."""
    param = PARAMS[name]
    kwargs: dict[str, Any] = {"seed": seed_data, **extra}
    if param.rbac:
        kwargs["rbac_token"] = RBAC_TOKEN
    if param.workspace:
        kwargs["workspaces"] = (param.workspace,)
    if param.konnect:
        kwargs["konnect_token"] = KONNECT_TOKEN
        kwargs["control_plane_id"] = CONTROL_PLANE
    return _server_module().serve_in_thread(param.profile, **kwargs)


def local_settings(name: str, url: str, **overrides: Any) -> KongSettings:
    param = PARAMS[name]
    values: dict[str, Any] = {"admin_url": url, "read_timeout": 2.0, "connect_timeout": 1.0}
    if param.rbac:
        values["admin_token"] = RBAC_TOKEN
    if param.workspace:
        values["workspace"] = param.workspace
    if param.konnect:
        values["konnect_token"] = KONNECT_TOKEN
        values["konnect_control_plane_id"] = CONTROL_PLANE
    values.update(overrides)
    return KongSettings(**values)


def _create_upstream(raw: httpx.Client, name: str, konnect: bool) -> None:
    created = raw.post("/upstreams", json={"name": name})
    created.raise_for_status()
    ref = created.json()["id"] if konnect else name
    for target, weight, tags in SEED_TARGETS:
        raw.post(
            f"/upstreams/{ref}/targets", json={"target": target, "weight": weight, "tags": tags}
        ).raise_for_status()


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.real_kong] if name == "real" else [])
        for name in PARAMS
    ]
)
def kong_env(request: pytest.FixtureRequest) -> Iterator[KongEnv]:
    name: str = request.param
    param = PARAMS[name]
    sleeps = Sleeps()
    if param.profile is None:
        url = os.environ.get("KONG_ADMIN_URL")
        if not url:
            pytest.skip("KONG_ADMIN_URL not set: real-Kong contract run skipped")
        settings = KongSettings(
            admin_url=url,
            admin_token=os.environ.get("KONG_ADMIN_TOKEN") or None,
            workspace=os.environ.get("KONG_WORKSPACE") or None,
        )
        upstream = f"kong-canary-test-{uuid.uuid4().hex[:10]}"
        with build_http_client(settings) as raw, build_http_client(settings) as http:
            _create_upstream(raw, upstream, konnect=False)
            try:
                admin = KongAdmin(http, sleep=sleeps)
                yield KongEnv(name, param, settings, admin, raw, upstream, None, sleeps)
            finally:
                raw.delete(f"/upstreams/{upstream}")
        return
    upstream = "orders"
    seeded = param.workspace is None  # a seed lands in the default workspace
    with start_local(name, seed_data=seed(upstream) if seeded else None, test_controls=True) as srv:
        settings = local_settings(name, srv.url)
        with build_http_client(settings) as raw, build_http_client(settings) as http:
            if not seeded:
                _create_upstream(raw, upstream, konnect=param.konnect)
            admin = KongAdmin(http, sleep=sleeps)
            yield KongEnv(name, param, settings, admin, raw, upstream, srv, sleeps)
