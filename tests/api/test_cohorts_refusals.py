"""Kongs that cannot run cohorts: refused with what to change, and not one write sent
(issue 14: ``untrusted_lua = off``, post-function not available, Konnect, DB-less)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from sidecar.app import close_app, create_app
from sidecar.kong_local.server import serve_in_thread
from sidecar.settings import KongSettings, Settings
from tests.api.conftest import TOKENS, OpenApiChecker, kong_settings
from tests.api.test_cohorts import dump

BODY = {"header": {"name": "X-Canary"}, "never_canary": {"groups": ["vip"]}}
SEED = {"upstreams": [{"name": "orders", "targets": [{"target": "10.0.0.1:80", "weight": 100}]}]}


@contextmanager
def sidecar_on(profile: str, **kong_options: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """The sidecar (in process) in front of a local Kong started with ``kong_options``;
    yields a client and the local Kong's app (its ``calls`` log every request)."""
    konnect = {"konnect_token": "kpat_test_token"} if profile == "konnect" else {}
    with serve_in_thread(profile, seed=SEED, **konnect, **kong_options) as server:
        kong = kong_settings(profile, server.url) if profile == "konnect" else None
        settings = Settings(tokens=TOKENS, kong=kong or KongSettings(admin_url=server.url))
        app = create_app(settings, sweep_leases=False)
        checker = OpenApiChecker()
        headers = {"Authorization": f"Bearer {TOKENS[0].token}"}
        with httpx.Client(
            transport=httpx.WSGITransport(app=app),
            base_url="http://sidecar",
            headers=headers,
            event_hooks={"response": [lambda r: (r.read(), checker.check(r))]},
        ) as client:
            if profile not in ("konnect", "dbless"):
                with httpx.Client(base_url=server.url) as raw:
                    raw.post("/services", json={"name": "orders", "host": "orders"})
            try:
                yield client, server
            finally:
                close_app(app)


def writes(local: Any) -> list[Any]:
    return [c for c in local.calls if c[0] != "GET"]


@pytest.mark.parametrize(
    ("options", "code", "advice"),
    [
        (
            {"configuration": {"untrusted_lua": "off"}},
            "untrusted_lua_off",
            "untrusted_lua = sandbox",
        ),
        (
            {"configuration": {"disabled_plugins": ("post-function",)}},
            "post_function_unavailable",
            "KONG_PLUGINS",
        ),
    ],
)
@pytest.mark.parametrize("profile", ["2.8", "3.4", "3.9"])
def test_a_kong_that_cannot_run_the_lua_is_refused_unchanged(profile, options, code, advice):
    with (
        sidecar_on(profile, **options) as (client, server),
        httpx.Client(base_url=server.url) as raw,
    ):
        before = len(writes(server.app))  # the fixture's own service
        entities = dump(raw)
        answer = client.put("/v1/upstreams/orders/cohorts", json=BODY)
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == code
        assert advice in answer.json()["error"]["message"]
        assert len(writes(server.app)) == before
        assert dump(raw) == entities


@pytest.mark.parametrize(("profile", "word"), [("konnect", "Konnect"), ("dbless", "DB-less")])
def test_konnect_and_dbless_are_refused_unchanged(profile, word):
    with sidecar_on(profile) as (client, server):
        answer = client.put("/v1/upstreams/orders/cohorts", json=BODY)
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "cohorts_unsupported"
        assert word in answer.json()["error"]["message"]
        assert writes(server.app) == []


def test_an_upstream_whose_shadow_names_would_be_invalid_is_refused() -> None:
    long_name = "a" * 60
    seed = {"upstreams": [{"name": long_name}]}
    with serve_in_thread("3.9", seed=seed) as server:
        settings = Settings(tokens=TOKENS, kong=KongSettings(admin_url=server.url))
        app = create_app(settings, sweep_leases=False)
        headers = {"Authorization": f"Bearer {TOKENS[0].token}"}
        with httpx.Client(
            transport=httpx.WSGITransport(app=app), base_url="http://s", headers=headers
        ) as client:
            answer = client.put(f"/v1/upstreams/{long_name}/cohorts", json=BODY)
        close_app(app)
        assert [c for c in server.app.calls if c[0] != "GET"] == []
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "upstream"
    assert "--stable" in answer.json()["error"]["message"]
