"""The http-log window around a canary, through the real app in front of the local Kong.

With ``gateway_metrics`` on, a split with canary traffic attaches our http-log to every Kong
service whose ``host`` is the upstream, a ramp step finds it in place and writes nothing, and
rollback, promote and lease expiry remove it. Failures never fail the split: they come back
as warnings (the change already reached Kong; ``sidecar.gateway.window``). The explicit
``/v1/upstreams/{u}/gateway-metrics`` endpoints open, show and close it by hand. Every
response is checked against the OpenAPI document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sidecar.app import close_app, create_app
from sidecar.kong_local.server import RunningServer, serve_in_thread
from sidecar.leases import sweep
from sidecar.settings import ApiToken, KongSettings, Settings
from tests.api.conftest import FakeClock, OpenApiChecker, kong_settings

SPINNAKER = ApiToken("spinnaker", "spinnaker-token-0123456789", "write")
VIEWER = ApiToken("viewer", "viewer-token-0123456789abc", "read")
PAYMENTS = ApiToken("payments", "payments-token-0123456789ab", "write", ("payments*",))
INGEST = ApiToken("kong-ingest", "kong-ingest-token-0123456789", "write")
TOKENS = (SPINNAKER, VIEWER, PAYMENTS, INGEST)
INGEST_URL = "http://kong-canary.canary.svc:8080"
CANARY = {"split": {"stable": 90, "baseline": 5, "canary": 5}}
TARGETS = {"baseline": ["10.0.0.2:80"], "canary": ["10.0.0.3:80"]}
CHECKER = OpenApiChecker()
# Kong's intervals, shortened: a canary's first split waits for the window (db + worker
# update frequencies) before it moves traffic (tests/gateway/test_window_live.py).
QUICK = {"worker_state_update_frequency": 0.1, "db_update_frequency": 0.1}


@dataclass
class Env:
    profile: str
    server: RunningServer
    kong: httpx.Client  # raw Kong, to arrange and inspect
    upstream: str
    services: list[str]  # ids of the services with host = upstream
    clock: FakeClock
    clients: list[httpx.Client] = field(default_factory=list)
    app: Any = None
    apps: list[Any] = field(default_factory=list)

    def sidecar(self, token: ApiToken | None = SPINNAKER, **settings: Any) -> httpx.Client:
        if self.app is None or settings:
            self.app = _app(self, **settings)
            self.apps.append(self.app)
        headers = {"Authorization": f"Bearer {token.token}"} if token else {}
        client = httpx.Client(
            transport=httpx.WSGITransport(app=self.app),
            base_url="http://sidecar.test",
            headers=headers,
            event_hooks={"response": [lambda r: (r.read(), CHECKER.check(r))]},
        )
        self.clients.append(client)
        return client

    def ours(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.kong.get("/plugins", params={"size": 1000}).json()["data"]
            if p["name"] == "http-log" and "managed-by=kong-canary" in (p["tags"] or ())
        ]

    def plugin_writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.server.app.calls if "plugins" in p and m != "GET"]


def _app(env: Env, **overrides: Any):  # type: ignore[no-untyped-def]
    values: dict[str, Any] = {
        "tokens": TOKENS,
        "kong": kong_settings(env.profile, env.server.url),
        "gateway_metrics": True,
        "gateway_ingest_url": INGEST_URL,
        "gateway_ingest_token": INGEST.token,
        "gateway_live_wait": 1.0,  # Konnect shows no interval: the whole bound is waited
        **overrides,
    }
    return create_app(Settings(**values), sweep_leases=False, clock=env.clock)


def _env(profile: str, **serve: Any) -> Iterator[Env]:
    server = serve_in_thread(
        profile,
        konnect_token="kpat_test_token" if profile == "konnect" else None,
        configuration=QUICK,
        **serve,
    )
    settings: KongSettings = kong_settings(profile, server.url)
    base, headers = server.url, {}
    if profile == "konnect":
        base = f"{server.admin_url}/core-entities"
        headers = {"Authorization": f"Bearer {settings.konnect_token}"}
    kong = httpx.Client(base_url=base, headers=headers, timeout=10)
    upstream = f"orders-{uuid.uuid4().hex[:6]}"
    kong.post("/upstreams", json={"name": upstream}).raise_for_status()
    kong.post(
        f"/upstreams/{upstream}/targets",
        json={"target": "10.0.0.1:80", "weight": 100, "tags": ["variant=stable"]},
    ).raise_for_status()
    ids = [
        kong.post("/services", json={"name": name, "host": upstream}).json()["id"]
        for name in (upstream, f"{upstream}-admin")
    ]
    other = kong.post("/services", json={"name": "payments", "host": "payments"}).json()
    # someone else's plugins, which must never be touched
    kong.post(f"/services/{ids[0]}/plugins", json={"name": "prometheus"}).raise_for_status()
    kong.post(
        f"/services/{other['id']}/plugins",
        json={"name": "http-log", "config": {"http_endpoint": "http://siem.example/in"}},
    ).raise_for_status()
    server.app.calls.clear()  # count only what the sidecar sends from here on
    env = Env(profile, server, kong, upstream, ids, FakeClock())
    try:
        yield env
    finally:
        for client in env.clients:
            client.close()
        for app in env.apps:
            close_app(app)
        kong.close()
        server.stop()


@pytest.fixture(params=("2.8", "3.4", "3.9", "konnect"))
def env(request) -> Iterator[Env]:  # type: ignore[no-untyped-def]
    yield from _env(request.param)


@pytest.fixture
def env39() -> Iterator[Env]:
    yield from _env("3.9")


def _open(env: Env, client: httpx.Client) -> httpx.Response:
    response = client.put(
        f"/v1/upstreams/{env.upstream}/split", json={**CANARY, "targets": TARGETS}
    )
    assert response.status_code == 200, response.text
    return response


def test_a_canary_split_opens_the_window_and_rollback_closes_it(env: Env) -> None:
    client = env.sidecar()
    answer = _open(env, client).json()
    assert not [w for w in answer["warnings"] if w.startswith("gateway metrics")]
    ours = env.ours()
    assert sorted(p["service"]["id"] for p in ours) == sorted(env.services)
    for plugin in ours:
        config = plugin["config"]
        assert config["http_endpoint"] == f"{INGEST_URL}/v1/kong-log"
        assert plugin["enabled"] is True
        assert f"kong-canary-upstream={env.upstream}" in plugin["tags"]
        if env.profile == "2.8":
            assert config["headers"]["Authorization"] == [f"Bearer {INGEST.token}"]
            assert config["headers"]["X-Kong-Canary-Upstream"] == [env.upstream]
            assert (config["queue_size"], config["flush_timeout"]) == (200, 1)
        else:
            assert config["headers"]["Authorization"] == f"Bearer {INGEST.token}"
            assert config["headers"]["X-Kong-Canary-Upstream"] == env.upstream
            assert config["queue"]["max_batch_size"] == 200
            assert config["queue"]["max_coalescing_delay"] == 1
    view = client.get(f"/v1/upstreams/{env.upstream}/gateway-metrics").json()
    assert view["attached"] is True and len(view["plugins"]) == 2

    rolled = client.post(f"/v1/upstreams/{env.upstream}/rollback")
    assert rolled.status_code == 200
    assert env.ours() == []
    names = sorted(p["name"] for p in env.kong.get("/plugins").json()["data"])
    assert names == ["http-log", "prometheus"]  # the foreign ones are still there
    assert client.get(f"/v1/upstreams/{env.upstream}/gateway-metrics").json()["attached"] is False


def test_ramp_steps_find_the_window_open_and_write_nothing(env: Env) -> None:
    client = env.sidecar()
    _open(env, client)
    before = env.plugin_writes()
    for step in ((80, 10, 10), (60, 20, 20)):
        split = dict(zip(("stable", "baseline", "canary"), step, strict=True))
        response = client.put(f"/v1/upstreams/{env.upstream}/split", json={"split": split})
        assert response.status_code == 200
    assert env.plugin_writes() == before
    assert len(env.ours()) == 2


def test_a_changed_ingest_config_is_rewritten_in_place(env: Env) -> None:
    """Konnect has no PATCH: the plugin is PUT whole, and keeps its service."""
    _open(env, env.sidecar())
    first = {p["id"]: p["service"] for p in env.ours()}
    client = env.sidecar(gateway_ingest_url="http://sidecar.other:8080")
    response = client.put(f"/v1/upstreams/{env.upstream}/split", json={"split": CANARY["split"]})
    assert response.status_code == 200
    # no split change -> no event; the explicit endpoint re-opens with the new config
    opened = client.post(f"/v1/upstreams/{env.upstream}/gateway-metrics")
    assert opened.status_code == 200
    assert {p["action"] for p in opened.json()["plugins"]} == {"update"}
    now = env.ours()
    assert {p["id"]: p["service"] for p in now} == first
    assert {p["config"]["http_endpoint"] for p in now} == {"http://sidecar.other:8080/v1/kong-log"}
    methods = {m for m, _ in env.plugin_writes()}
    assert methods == ({"POST", "PUT"} if env.profile == "konnect" else {"POST", "PATCH"})


@pytest.mark.parametrize("end", ["promote", "lease_expiry", "rollback_all"])
def test_every_way_out_of_the_canary_closes_the_window(env39: Env, end: str) -> None:
    env = env39
    admin = ApiToken("oncall", "oncall-token-0123456789abcd", "admin")
    client = env.sidecar(tokens=(*TOKENS, admin))
    _open(env, client)
    assert len(env.ours()) == 2
    if end == "promote":
        assert client.post(f"/v1/upstreams/{env.upstream}/promote").status_code == 200
    elif end == "lease_expiry":
        env.clock.advance(3601)
        service = env.app.extensions["kong_canary"].service
        assert sweep(service, env.clock()) == [env.upstream]
    else:
        headers = {"Authorization": f"Bearer {admin.token}"}
        assert client.post("/v1/rollback-all", headers=headers).status_code == 200
    assert env.ours() == []


def test_a_failed_attach_is_a_warning_and_the_split_still_applies(env39: Env) -> None:
    env = env39
    env.server.app.faults.fail(1, "500", ("POST",), path_contains="/plugins")
    client = env.sidecar()
    answer = _open(env, client).json()
    assert answer["split"] == {"stable": 90.0, "baseline": 5.0, "canary": 5.0}
    (warning,) = [w for w in answer["warnings"] if w.startswith("gateway metrics")]
    assert "could not be attached" in warning
    assert f"POST /v1/upstreams/{env.upstream}/gateway-metrics" in warning
    assert env.ours() == []  # all or nothing: the one created before the failure is gone
    weights = {
        t["target"]: t["weight"]
        for t in env.kong.get(f"/upstreams/{env.upstream}/targets").json()["data"]
    }
    assert weights["10.0.0.3:80"] > 0
    fixed = client.post(f"/v1/upstreams/{env.upstream}/gateway-metrics")
    assert fixed.status_code == 200 and fixed.json()["attached"] is True
    assert len(env.ours()) == 2


def test_no_service_or_a_foreign_http_log_are_warnings(env39: Env) -> None:
    env = env39
    client = env.sidecar()
    env.kong.post(
        f"/services/{env.services[1]}/plugins",
        json={"name": "http-log", "config": {"http_endpoint": "http://siem.example/in"}},
    ).raise_for_status()
    answer = _open(env, client).json()
    (warning,) = [w for w in answer["warnings"] if w.startswith("gateway metrics")]
    assert "already has an http-log plugin" in warning
    assert env.ours() == []
    refused = client.post(f"/v1/upstreams/{env.upstream}/gateway-metrics")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "http_log_in_use"

    for service in env.services:
        env.kong.delete(f"/services/{service}").raise_for_status()
    refused = client.post(f"/v1/upstreams/{env.upstream}/gateway-metrics")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_service"


def test_a_failed_detach_is_a_warning_and_the_endpoint_finishes_it(env39: Env) -> None:
    env = env39
    client = env.sidecar()
    _open(env, client)
    env.server.app.faults.fail(1, "500", ("DELETE",), path_contains="/plugins")
    answer = client.post(f"/v1/upstreams/{env.upstream}/rollback").json()
    assert answer["split"] == {"stable": 100.0, "baseline": 0.0, "canary": 0.0}
    (warning,) = [w for w in answer["warnings"] if w.startswith("gateway metrics")]
    assert f"DELETE /v1/upstreams/{env.upstream}/gateway-metrics" in warning
    assert len(env.ours()) == 2
    closed = client.delete(f"/v1/upstreams/{env.upstream}/gateway-metrics")
    assert closed.status_code == 200
    assert closed.json()["attached"] is False and len(closed.json()["removed"]) == 2
    assert env.ours() == []


def test_an_unexpected_error_in_the_window_never_fails_the_split(
    env39: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("sidecar.gateway.window.attach_plugins", boom)
    answer = _open(env39, env39.sidecar()).json()
    assert any("unexpected error: bug" in w for w in answer["warnings"])


def test_without_gateway_metrics_the_split_leaves_plugins_alone(env39: Env) -> None:
    env = env39
    client = env.sidecar(gateway_metrics=False)
    _open(env, client)
    assert env.ours() == [] and env.plugin_writes() == []
    opened = client.post(f"/v1/upstreams/{env.upstream}/gateway-metrics")  # by hand only
    assert opened.status_code == 200 and len(env.ours()) == 2
    assert client.post(f"/v1/upstreams/{env.upstream}/rollback").status_code == 200
    assert len(env.ours()) == 2  # nobody closes it but the endpoint
    assert client.delete(f"/v1/upstreams/{env.upstream}/gateway-metrics").status_code == 200
    assert env.ours() == []


def test_the_endpoints_check_token_upstream_and_configuration(env39: Env) -> None:
    env = env39
    path = f"/v1/upstreams/{env.upstream}/gateway-metrics"
    assert env.sidecar(token=None).post(path).status_code == 401
    assert env.sidecar(token=VIEWER).post(path).status_code == 403
    assert env.sidecar(token=VIEWER).get(path).status_code == 200
    refused = env.sidecar(token=PAYMENTS).delete(path)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "upstream_not_allowed"
    missing = env.sidecar().post("/v1/upstreams/no-such-upstream/gateway-metrics")
    assert missing.status_code == 404
    assert env.sidecar().get("/v1/upstreams/bad%20name/gateway-metrics").status_code == 422

    scoped_ingest = ApiToken("kong-ingest", INGEST.token, "write", ("payments*",))
    client = env.sidecar(tokens=(SPINNAKER, scoped_ingest))
    refused = client.post(path)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "ingest_token_not_allowed"

    plain = env.sidecar(gateway_metrics=False, gateway_ingest_token=None)
    for method in ("GET", "POST", "DELETE"):
        answer = plain.request(method, path)
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "gateway_metrics_not_configured"
    assert env.plugin_writes() == []


def test_opening_by_id_acts_on_kongs_name_and_checks_the_token_against_it(env39: Env) -> None:
    """The window, its primed series and its labels are the name's, whatever spelling of the
    id the URL used; so a token whose patterns allow the id but not the name may not open it."""
    env = env39
    by_id = env.kong.get(f"/upstreams/{env.upstream}").json()["id"].upper()
    path = f"/v1/upstreams/{by_id}/gateway-metrics"
    ids_only = ApiToken("ids", "ids-only-token-0123456789ab", "write", ("*-*-*-*-*",))
    refused = env.sidecar(token=ids_only, tokens=(*TOKENS, ids_only)).post(path)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "upstream_not_allowed"
    assert env.plugin_writes() == []
    opened = env.sidecar().post(path)
    assert opened.status_code == 200, opened.text
    assert opened.json()["upstream"] == env.upstream
    assert len(env.ours()) == 2  # on the services whose host is the name


def test_a_dbless_node_gets_no_writes() -> None:
    with serve_in_thread("dbless", seed={"upstreams": [{"name": "orders"}]}) as server:
        settings = Settings(
            tokens=TOKENS,
            kong=KongSettings(admin_url=server.url),
            gateway_ingest_url=INGEST_URL,
            gateway_ingest_token=INGEST.token,
        )
        app = create_app(settings, sweep_leases=False)
        headers = {"Authorization": f"Bearer {SPINNAKER.token}"}
        with httpx.Client(
            transport=httpx.WSGITransport(app=app), base_url="http://s", headers=headers
        ) as client:
            answer = client.post("/v1/upstreams/orders/gateway-metrics")
        close_app(app)
        calls = list(server.app.calls)
    assert answer.status_code == 409  # a DB-less node has no services: nothing to attach to
    assert answer.json()["error"]["code"] == "no_service"
    assert [c for c in calls if c[0] != "GET"] == []
