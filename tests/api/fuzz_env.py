"""What the API fuzzer runs against: the sidecar in-process (WSGI) in front of a local Kong
3.9 seeded with upstreams that reach every branch (stable-only, mid-canary with an
unhealthy target, consistent-hashing, a target of unknown variant, no targets, two running
ramps), plus the document checks and the Kong snapshots the properties compare.

Kong's state is read through its own Admin API (called in-process, no sockets), raw bytes,
so "unchanged" means exactly what a client of Kong would see: every service and plugin,
every upstream (with its tags: leases and ramp marks live there) and every target with
weight and tags.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import schemathesis
from flask import Flask
from werkzeug.test import Client

from sidecar.api.openapi import document
from sidecar.app import close_app, create_app
from sidecar.kong_local.server import RunningServer, serve_in_thread
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.openapi_bodies import check_body

WRITE = ApiToken("spinnaker", "spinnaker-token-0123456789", "write")
READ = ApiToken("viewer", "viewer-token-0123456789abc", "read")
ORDERS_ONLY = ApiToken("orders-only", "orders-only-token-012345678", "write", ("orders*",))
ADMIN = ApiToken("oncall", "oncall-token-0123456789abcd", "admin")
TOKENS = (WRITE, READ, ORDERS_ONLY, ADMIN)
# "/" and "/status/*": the status page and its static files (they hold no data)
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/"}
    | {f"/status/{name}" for name in ("status.js", "status.css", "favicon.svg")}
)
NOW = 1_800_000_000.0


def _target(n: int, address: str, weight: int, *tags: str) -> dict[str, Any]:
    ident = f"00000000-0000-4000-8000-{n:012d}"
    return {"id": ident, "target": address, "weight": weight, "tags": list(tags)}


def _upstream(n: int, name: str, *targets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ident = f"00000000-0000-4000-9000-{n:012d}"
    return {"id": ident, "name": name, **extra, "targets": list(targets)}


MANAGED = "managed-by=kong-canary"
SEED: dict[str, Any] = {
    "upstreams": [
        _upstream(1, "orders", _target(1, "10.0.0.1:80", 100, "variant=stable")),
        _upstream(
            2,
            "payments",
            _target(2, "10.0.1.1:80", 90, "variant=stable"),
            _target(3, "10.0.1.2:80", 5, "variant=baseline", MANAGED),
            _target(4, "10.0.1.3:80", 5, "variant=canary", MANAGED),
            tags=[MANAGED],
        ),
        _upstream(
            3,
            "orders-eu",
            _target(5, "10.0.2.1:80", 100),
            _target(6, "10.0.2.2:80", 0, "variant=canary", MANAGED),
            algorithm="consistent-hashing",
            hash_on="ip",
        ),
        _upstream(
            4,
            "legacy",
            _target(7, "10.0.3.1:80", 50, "variant=stable"),
            _target(8, "10.0.3.2:80", 50, "variant=blue"),
        ),
        _upstream(5, "empty"),
        _upstream(6, "checkout", _target(9, "10.0.4.1:80", 100, "variant=stable")),
    ]
}
UPSTREAMS = tuple(u["name"] for u in SEED["upstreams"])
UNHEALTHY = ("payments", "10.0.1.3:80")  # the canary: shifting more onto it is refused


class FixedClock:
    """Kong's wall clock: fixed, so a reset Kong is byte-identical."""

    def __call__(self) -> float:
        return NOW


class SidecarClock:
    """The sidecar's wall clock, which each example may move on (ramp steps come due,
    leases expire) and which goes back to ``NOW`` with every reset."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class DocumentChecker:
    """The response against the document, by the route the request really took: a path
    parameter holding an encoded '/' is decoded before routing (WSGI), so it lands on another
    route or none (404), and a known path with another method is a 405."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", path) + "$"), path)
            for path in doc["paths"]
        ]

    def route(self, url: str) -> str | None:
        path = unquote(urlsplit(url).path)
        return next((template for pattern, template in self.routes if pattern.match(path)), None)

    def check(self, method: str, url: str, status: int, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
        template = self.route(url)
        if template is None:
            assert status == 404, f"{method} {url} is in no route of the document: {status}"
            return None
        op = self.doc["paths"][template].get(method.lower())
        if op is None:
            assert status == 405, f"{method} {template} is not in the document: {status}"
            return None
        declared = op["responses"].get(str(status))
        assert declared is not None, (
            f"{method} {template} answered {status}, which the document does not declare: "
            f"{body[:300]!r}"
        )
        content_type = headers.get("content-type", "")
        media, schema = next(iter(declared["content"].items()))
        assert content_type.split(";")[0].strip() == media, f"{content_type} is not {media}"
        if media == "application/json":
            check_body(self.doc, schema, json.loads(body))
        return template


@dataclass
class FuzzEnv:
    kong: RunningServer
    app: Flask
    schema: Any  # schemathesis OpenApiSchema, loaded from the app's own /openapi.json
    admin: Client  # Kong's Admin API, called in-process (same bytes, no sockets)
    clock: SidecarClock
    checker: DocumentChecker
    ramp_ids: list[str] = field(default_factory=list)
    resets: int = 0

    def kong_state(self) -> tuple[bytes, ...]:
        """Every service, plugin, upstream and target, as Kong's Admin API returns them."""
        state = []
        for entity in ("services", "plugins"):  # the gateway-metrics window writes plugins
            state.append(self._get(f"/{entity}"))
        upstreams = self._get("/upstreams")
        state.append(upstreams)
        for upstream in json.loads(upstreams)["data"]:
            state.append(self._get(f"/upstreams/{upstream['id']}/targets"))
        return tuple(state)

    def _get(self, path: str) -> bytes:
        response = self.admin.get(path, query_string={"size": 1000})
        assert response.status_code == 200, (path, response.status_code)
        return response.get_data()

    def reset(self) -> None:
        """Kong back to the seed (the sidecar keeps no state of its own that matters:
        ramp ids are signed schedules, ownership and leases are Kong tags)."""
        self.kong.app.reset()
        self.clock.now = NOW
        self.kong.app.set_health(*UNHEALTHY, "UNHEALTHY")
        self.resets += 1

    def close(self) -> None:
        close_app(self.app)
        self.kong.stop()


EXECUTION = "fuzz-execution-1"  # the Spinnaker execution that started the running ramp


def _start_ramps(app: Flask) -> list[str]:
    """Real, signed ramp ids: one that a later ramp took over (FAILED), one running on
    ``orders`` started by ``EXECUTION`` (so the cancel endpoints have something to cancel),
    and one schedule running on ``checkout``."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {ADMIN.token}"}
    targets = {"baseline": ["10.0.0.2:80"], "canary": ["10.0.0.3:80"]}
    linear = {"split": {"stable": 90, "baseline": 5, "canary": 5}, "duration": 600, "steps": 3}
    schedule = {"schedule": [{"stable": 98, "baseline": 1, "canary": 1}], "interval": 60}
    starts = [
        ("orders", {**linear, "targets": targets}),
        ("orders", {**linear, "targets": targets, "context": {"execution_id": EXECUTION}}),
        ("checkout", {**schedule, "targets": targets}),
    ]
    ids = []
    for upstream, body in starts:
        response = client.post(f"/v1/upstreams/{upstream}/ramps", json=body, headers=headers)
        assert response.status_code == 202, response.get_data(as_text=True)
        ids.append(response.get_json()["id"])
    return ids


def _capture(admin: Client) -> dict[str, Any]:
    """Kong's upstreams and targets as a seed, ids and tags kept (ramp marks live there)."""

    def listing(path: str) -> list[dict[str, Any]]:
        return json.loads(admin.get(path, query_string={"size": 1000}).get_data())["data"]

    upstreams = []
    for up in listing("/upstreams"):
        targets = [
            {k: t[k] for k in ("id", "target", "weight", "tags") if t[k] is not None}
            for t in listing(f"/upstreams/{up['id']}/targets")
        ]
        fields = {k: up[k] for k in ("id", "name", "algorithm", "hash_on", "tags") if up[k]}
        upstreams.append({**fields, "targets": targets})
    return {"upstreams": upstreams}


def _settings(kong_url: str) -> Settings:
    return Settings(
        tokens=TOKENS,
        kong=KongSettings(admin_url=kong_url),
        max_shifted_percent=50,
        gateway_ingest_url="http://127.0.0.1:9",  # never called: Kong here proxies nothing
        gateway_ingest_token=WRITE.token,
    )


def start() -> FuzzEnv:
    """Ramps are started for real on a scratch Kong whose end state becomes the seed of
    the Kong the fuzzer runs against, so every reset brings the running ramps back."""
    kong_clock, clock = FixedClock(), SidecarClock()
    with serve_in_thread("3.9", seed=SEED, clock=kong_clock) as scratch:
        starter = create_app(_settings(scratch.url), sweep_leases=False, clock=clock)
        ramp_ids = _start_ramps(starter)
        close_app(starter)
        seed = _capture(Client(scratch.app))
    kong = serve_in_thread("3.9", seed=seed, clock=kong_clock)
    app = create_app(_settings(kong.url), sweep_leases=False, clock=clock)
    config = schemathesis.Config.from_dict({})
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
    # Tokens are the test's business (valid ones, and each way of being invalid).
    schema.config.generation.update(with_security_parameters=False)
    env = FuzzEnv(
        kong=kong,
        app=app,
        schema=schema,
        admin=Client(kong.app),
        clock=clock,
        checker=DocumentChecker(document()),
        ramp_ids=ramp_ids,
    )
    env.reset()
    return env
