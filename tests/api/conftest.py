"""The sidecar over real HTTP on loopback, in front of the Kong-compatible server (every
profile) or a real Kong (``KONG_ADMIN_URL``). Every response the tests see is checked
against the sidecar's own OpenAPI document."""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from werkzeug.serving import make_server

from sidecar.api.openapi import document
from sidecar.app import close_app, create_app
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.kong_state import every_item, other_canaries
from tests.openapi_bodies import check_body

TOKENS = (
    ApiToken("spinnaker", "spinnaker-token-0123456789", "write"),
    ApiToken("viewer", "viewer-token-0123456789abc", "read"),
    ApiToken("orders-only", "orders-only-token-012345678", "write", ("orders*",)),
    ApiToken("oncall", "oncall-token-0123456789abcd", "admin"),
)
LOCAL_PROFILES = ("2.8", "3.4", "3.9", "konnect")


class OpenApiChecker:
    """Validates a response against the document: path template, method, status, body."""

    def __init__(self) -> None:
        self.doc = document()
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", path) + "$"), ops)
            for path, ops in self.doc["paths"].items()
        ]

    def check(self, response: httpx.Response) -> None:
        path = response.request.url.path
        method = response.request.method.lower()
        ops = next((o for pattern, o in self.routes if pattern.match(path)), None)
        if ops is None:
            assert response.status_code == 404, f"{path} is not in the OpenAPI document"
            return
        op = ops.get(method)
        if op is None:
            assert response.status_code == 405, f"{method} {path} answered {response.status_code}"
            return
        declared = op["responses"].get(str(response.status_code))
        assert declared is not None, (
            f"{method.upper()} {path} answered {response.status_code}, which the document "
            f"does not declare: {response.text[:300]}"
        )
        content = declared["content"]
        if "application/json" in content:
            assert response.headers["content-type"].startswith("application/json")
            check_body(self.doc, content["application/json"]["schema"], response.json())


class FakeClock:
    """The wall clock leases and ramps read; tests move it instead of sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sidecar:
    url: str
    kong_url: str
    profile: str
    local: object | None  # the LocalKong app when not a real Kong
    checker: OpenApiChecker
    clock: FakeClock
    app: object
    clients: list[httpx.Client] = field(default_factory=list)

    kong_settings: KongSettings | None = None
    # (major, minor) Kong reports at GET /, for real and local Kong alike; None on Konnect
    # (no node information). Version-dependent assertions use this, never ``profile``:
    # a real-Kong run's profile is "real" whatever its version (issue 13 item 14).
    kong_version: tuple[int, int] | None = None

    @property
    def kong_2(self) -> bool:
        """Kong 2.x: the hashing and health rules of 2.8 apply."""
        return self.kong_version is not None and self.kong_version < (3, 0)

    def kong_client(self) -> httpx.Client:
        """Raw access to Kong, to arrange and inspect state around the sidecar."""
        ks = self.kong_settings
        base = self.kong_url
        headers = {}
        if ks is not None and ks.flavour == "konnect":
            base += f"/v2/control-planes/{ks.konnect_control_plane_id}/core-entities"
            headers["Authorization"] = f"Bearer {ks.konnect_token}"
        elif ks is not None:
            if ks.workspace:
                base += f"/{ks.workspace}"
            if ks.admin_token:
                headers["Kong-Admin-Token"] = ks.admin_token
        client = httpx.Client(base_url=base, headers=headers, timeout=10)
        self.clients.append(client)
        return client

    def kong_weights(self, upstream: str) -> dict[str, int]:
        data = self.kong_client().get(f"/upstreams/{upstream}/targets?size=1000").json()["data"]
        return {t["target"]: t["weight"] for t in data}

    def client(self, token: str | None = TOKENS[0].token) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=30,
            event_hooks={"response": [lambda r: (r.read(), self.checker.check(r))]},
        )
        self.clients.append(client)
        return client


def detect_kong_version(kong: httpx.Client) -> tuple[int, int] | None:
    """(major, minor) from Kong's ``GET /`` (``version``: "3.4.2", "2.8.1.0-enterprise-
    edition"); None when the root has no node information (Konnect's control-plane API)."""
    answer = kong.get("/")
    if answer.status_code != 200:
        return None
    match = re.match(r"(\d+)\.(\d+)", str(answer.json().get("version", "")))
    return (int(match[1]), int(match[2])) if match else None


def skip_if_other_canaries(sidecar: Sidecar, mine: str, action: str) -> None:
    """A test whose ``action`` (the lease sweep, rollback-all) rolls back *every* managed
    upstream in Kong cannot run on a real Kong where another canary is live: it would roll
    that one back too, and its exact results would name it. Local profiles start a fresh
    server per test, so there is never another there."""
    if sidecar.local is not None:
        return
    others = other_canaries(sidecar.kong_client(), mine)
    if others:
        pytest.skip(
            f"the Kong at {sidecar.kong_url} holds other live canaries ({', '.join(others)}): "
            f"{action} would roll them back too"
        )


def skip_if_global_post_function(sidecar: Sidecar) -> None:
    """Cohorts are refused (409 ``post_function_in_use``) on a Kong with a global
    post-function: ours on the service would silence it (Kong runs the most specific one,
    ``kong/runloop/plugins_iterator.lua``). A real Kong that has one cannot run the cohort
    cases; the refusal itself is tested on the local profiles."""
    if sidecar.local is not None:
        return
    plugins = every_item(sidecar.kong_client(), "/plugins")
    if any(
        p["name"] == "post-function" and not p.get("service") and not p.get("route")
        for p in plugins
    ):
        pytest.skip(f"the Kong at {sidecar.kong_url} has a global post-function: cohorts refused")


def _serve(app) -> tuple[str, callable]:  # type: ignore[valid-type]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # a short poll: shutdown() waits for it, once per test
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_port}", stop


def kong_settings(profile: str, url: str) -> KongSettings:
    if profile == "konnect":
        return KongSettings(
            admin_url=url,
            flavour="konnect",
            konnect_token="kpat_test_token",
            konnect_control_plane_id="cp-local",
            read_timeout=2.0,
        )
    return KongSettings(admin_url=url, read_timeout=2.0)


def _admin_headers(kong: KongSettings) -> dict[str, str]:
    return {"Kong-Admin-Token": kong.admin_token} if kong.admin_token else {}


def _params() -> list:
    params = [pytest.param(p, id=f"kong-{p}") for p in LOCAL_PROFILES]
    params.append(
        pytest.param(
            "real",
            id="real-kong",
            marks=[
                pytest.mark.real_kong,
                pytest.mark.skipif(
                    not os.environ.get("KONG_ADMIN_URL"),
                    reason="KONG_ADMIN_URL not set: real-Kong contract run skipped",
                ),
            ],
        )
    )
    return params


@pytest.fixture(scope="session")
def checker() -> OpenApiChecker:
    return OpenApiChecker()


@pytest.fixture(params=_params())
def sidecar(request, checker) -> Iterator[Sidecar]:
    profile = request.param
    stops = []
    if profile == "real":
        kong_url = os.environ["KONG_ADMIN_URL"]
        kong = KongSettings(
            admin_url=kong_url,
            admin_token=os.environ.get("KONG_ADMIN_TOKEN"),
            workspace=os.environ.get("KONG_WORKSPACE"),
        )
        local_app = None
    else:
        server = serve_in_thread(
            profile,
            konnect_token="kpat_test_token" if profile == "konnect" else None,
            test_controls=True,
        )
        stops.append(server.stop)
        kong_url = server.url
        kong = kong_settings(profile, server.url)
        local_app = server.app
    settings = Settings(tokens=TOKENS, kong=kong, max_shifted_percent=50)
    clock = FakeClock()
    app = create_app(settings, sweep_leases=False, clock=clock)
    stops.append(lambda: close_app(app))
    url, stop = _serve(app)
    stops.append(stop)
    sidecar = Sidecar(url, kong_url, profile, local_app, checker, clock, app, kong_settings=kong)
    with httpx.Client(base_url=kong_url, headers=_admin_headers(kong), timeout=10) as raw:
        sidecar.kong_version = detect_kong_version(raw)
    try:
        yield sidecar
    finally:
        for client in sidecar.clients:
            client.close()
        for stop in reversed(stops):
            stop()


@pytest.fixture
def upstream(sidecar) -> Iterator[str]:
    """A fresh upstream with one stable target, made through Kong's own API."""
    name = f"orders-{uuid.uuid4().hex[:8]}"
    kong = sidecar.kong_client()
    kong.post("/upstreams", json={"name": name}).raise_for_status()
    kong.post(
        f"/upstreams/{name}/targets",
        json={"target": "10.0.0.1:80", "weight": 100, "tags": ["variant=stable"]},
    ).raise_for_status()
    yield name
    kong.delete(f"/upstreams/{name}")
