"""The http-log plugin for the canary window: config per Kong version, and attach/detach
through the small ``KongPlugins`` adapter against a tiny stateful fake of Kong's
``/services`` and ``/plugins`` endpoints (pagination and unique-constraint 409 included).

Config shapes: ``kong/plugins/http-log/schema.lua`` (2.8: ``queue_size``, ``flush_timeout``,
array-valued ``headers``; 3.x: ``queue`` from ``kong/tools/queue_schema.lua`` and string
headers, see migration ``001_280_to_300.lua``).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest

from sidecar.errors import ApiError
from sidecar.gateway.kong_plugins import KongPlugins
from sidecar.gateway.plugin import (
    UPSTREAM_HEADER,
    attach_http_log,
    detach_http_log,
    http_log_config,
    http_log_plugin,
    is_managed,
    plan_attach,
)
from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import KongReadOnly, KongUnavailable
from sidecar.kong.models import Flavour

OPTIONS = {"endpoint": "http://sidecar:8080/v1/kong-log", "token": "kong-ingest-token-0123456789"}


def test_3x_config_uses_the_queue_record_and_string_headers() -> None:
    config = http_log_config(
        Flavour.KONG_3, upstream="orders", batch_size=500, flush_seconds=2, **OPTIONS
    )
    assert config["queue"] == {
        "max_batch_size": 500,
        "max_coalescing_delay": 2,
        "max_retry_time": 60.0,
    }
    assert config["headers"] == {
        "Authorization": "Bearer kong-ingest-token-0123456789",
        UPSTREAM_HEADER: "orders",
    }
    assert "queue_size" not in config and "flush_timeout" not in config  # deprecated in 3.x
    assert config["content_type"] == "application/json" and config["method"] == "POST"
    assert config["http_endpoint"] == OPTIONS["endpoint"]


def test_28_config_uses_queue_size_flush_timeout_and_array_headers() -> None:
    config = http_log_config(
        Flavour.KONG_2, upstream="orders", batch_size=200, flush_seconds=1, **OPTIONS
    )
    assert config["queue_size"] == 200 and config["flush_timeout"] == 1
    assert config["headers"]["Authorization"] == ["Bearer kong-ingest-token-0123456789"]
    assert config["headers"][UPSTREAM_HEADER] == ["orders"]
    assert "queue" not in config


def test_konnect_gets_the_3x_shape() -> None:
    assert "queue" in http_log_config(Flavour.KONNECT, upstream="orders", **OPTIONS)


@pytest.mark.parametrize(
    "bad",
    [
        {"endpoint": "ftp://x/v1/kong-log"},
        {"endpoint": "/v1/kong-log"},
        {"token": ""},
        {"token": "a\r\nX-Evil: 1"},
        {"batch_size": 0},
        {"batch_size": 1001},
        {"flush_seconds": -1},
    ],
)
def test_config_refuses_values_kong_or_we_cannot_use(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        http_log_config(Flavour.KONG_3, upstream="orders", **{**OPTIONS, **bad})


def test_plugins_are_tagged_so_detach_finds_only_ours() -> None:
    plugin = http_log_plugin(Flavour.KONG_3, upstream="orders", **OPTIONS)
    assert plugin["name"] == "http-log"
    assert is_managed(plugin, "orders") and is_managed(plugin)
    assert not is_managed(plugin, "payments")
    assert not is_managed({**plugin, "tags": None})
    assert not is_managed({**plugin, "name": "file-log"})


def test_plan_refuses_a_foreign_http_log_and_a_missing_service() -> None:
    foreign = {"id": "p9", "name": "http-log", "tags": ["team-logging"]}
    with pytest.raises(ApiError) as caught:
        plan_attach("orders", ["s1"], {"s1": [foreign]})
    assert (caught.value.status, caught.value.code) == (409, "http_log_in_use")
    with pytest.raises(ApiError) as caught:
        plan_attach("orders", [], {})
    assert caught.value.code == "no_service"


class FakePluginsKong:
    """Just enough of Kong's Admin API: pages of 2 with ``offset``, one plugin per
    (name, service) like Kong's cache_key, 404/409 bodies in Kong's shape."""

    PAGE = 2

    def __init__(self, services: list[dict[str, Any]]) -> None:
        self.services = services
        self.plugins: dict[str, dict[str, Any]] = {}
        self.ids = (f"plugin-{n}" for n in itertools.count(1))
        self.fail_creates_after: int | None = None
        self.log: list[str] = []

    def page(self, items: list[dict[str, Any]], request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("offset", "0"))
        chunk = items[start : start + self.PAGE]
        nxt = start + self.PAGE
        return httpx.Response(
            200, json={"data": chunk, "offset": str(nxt) if nxt < len(items) else None}
        )

    def handler(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        self.log.append(f"{request.method} {request.url.path}")
        method = request.method
        if parts == ["services"] and method == "GET":
            return self.page(self.services, request)
        if parts == ["plugins"] and method == "GET":
            return self.page(list(self.plugins.values()), request)
        if len(parts) == 3 and parts[0] == "services" and parts[2] == "plugins":
            mine = [p for p in self.plugins.values() if p["service"]["id"] == parts[1]]
            if method == "GET":
                return self.page(mine, request)
            if method == "POST":
                return self.create(parts[1], json.loads(request.content), mine)
        if len(parts) == 2 and parts[0] == "plugins":
            plugin = self.plugins.get(parts[1])
            if plugin is None:
                return httpx.Response(404, json={"message": "Not found"})
            if method == "DELETE":
                del self.plugins[parts[1]]
                return httpx.Response(204)
            if method == "PATCH":
                plugin.update(json.loads(request.content))
                return httpx.Response(200, json=plugin)
        return httpx.Response(404, json={"message": "Not found"})

    def create(self, service_id: str, body: dict[str, Any], mine: list) -> httpx.Response:
        if self.fail_creates_after is not None and len(self.plugins) >= self.fail_creates_after:
            return httpx.Response(500, json={"message": "An unexpected error occurred"})
        if any(p["name"] == body["name"] for p in mine):
            return httpx.Response(
                409,
                json={
                    "code": 5,
                    "name": "unique constraint violation",
                    "message": "UNIQUE violation detected on '{name=\"http-log\"}'",
                },
            )
        plugin = {**body, "id": next(self.ids), "service": {"id": service_id}}
        self.plugins[plugin["id"]] = plugin
        return httpx.Response(201, json=plugin)

    def admin(self, flavour: Flavour) -> KongAdmin:
        http = httpx.Client(
            base_url="http://kong.test:8001", transport=httpx.MockTransport(self.handler)
        )
        return KongAdmin(http, flavour=flavour, read_retries=0)


def services(*hosts: str) -> list[dict[str, Any]]:
    return [{"id": f"svc-{n}", "name": f"s{n}", "host": host} for n, host in enumerate(hosts)]


def test_attach_covers_every_service_of_the_upstream_across_pages() -> None:
    kong = FakePluginsKong(services("payments", "orders", "10.0.0.1", "orders", "orders"))
    ids = attach_http_log(kong.admin(Flavour.KONG_3), "orders", **OPTIONS)
    assert len(ids) == 3
    assert sorted(p["service"]["id"] for p in kong.plugins.values()) == ["svc-1", "svc-3", "svc-4"]
    assert all(p["config"]["queue"]["max_batch_size"] == 200 for p in kong.plugins.values())


def test_attach_twice_updates_instead_of_conflicting() -> None:
    kong = FakePluginsKong(services("orders"))
    admin = kong.admin(Flavour.KONG_2)
    first = attach_http_log(admin, "orders", **OPTIONS)
    second = attach_http_log(admin, "orders", **{**OPTIONS, "token": "another-token-0123456789"})
    assert first == second and len(kong.plugins) == 1
    plugin = kong.plugins[first[0]]
    assert plugin["config"]["headers"]["Authorization"] == ["Bearer another-token-0123456789"]


def test_attach_leaves_a_foreign_http_log_alone_and_writes_nothing() -> None:
    kong = FakePluginsKong(services("orders", "orders"))
    kong.plugins["theirs"] = {
        "id": "theirs",
        "name": "http-log",
        "tags": None,
        "service": {"id": "svc-1"},
    }
    with pytest.raises(ApiError) as caught:
        attach_http_log(kong.admin(Flavour.KONG_3), "orders", **OPTIONS)
    assert caught.value.code == "http_log_in_use"
    assert list(kong.plugins) == ["theirs"]


def test_a_failed_attach_removes_what_it_created() -> None:
    kong = FakePluginsKong(services("orders", "orders"))
    kong.fail_creates_after = 1
    with pytest.raises(KongUnavailable):
        attach_http_log(kong.admin(Flavour.KONG_3), "orders", **OPTIONS)
    assert kong.plugins == {}
    assert "DELETE /plugins/plugin-1" in kong.log


def test_detach_removes_ours_for_that_upstream_and_nothing_else() -> None:
    kong = FakePluginsKong(services("orders", "payments", "orders"))
    admin = kong.admin(Flavour.KONG_3)
    orders = attach_http_log(admin, "orders", **OPTIONS)
    payments = attach_http_log(admin, "payments", **OPTIONS)
    kong.plugins["theirs"] = {
        "id": "theirs",
        "name": "http-log",
        "tags": ["x"],
        "service": {"id": "svc-9"},
    }
    assert sorted(detach_http_log(admin, "orders")) == sorted(orders)
    assert sorted(kong.plugins) == sorted([*payments, "theirs"])
    assert detach_http_log(admin, "orders") == []  # idempotent
    assert detach_http_log(admin) == payments  # all of ours, whatever the upstream
    assert list(kong.plugins) == ["theirs"]


def test_detach_reports_a_plugin_that_did_not_go() -> None:
    kong = FakePluginsKong(services("orders"))
    admin = kong.admin(Flavour.KONG_3)
    attach_http_log(admin, "orders", **OPTIONS)
    original = kong.handler

    def sticky(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(204)  # claims success, deletes nothing
        return original(request)

    kong.handler = sticky  # type: ignore[method-assign]
    admin = kong.admin(Flavour.KONG_3)
    with pytest.raises(ApiError) as caught:
        detach_http_log(admin, "orders")
    assert caught.value.code == "http_log_left_attached"


def test_a_plugin_already_configured_so_is_kept_not_rewritten() -> None:
    """Kong returns every default (``queue.max_entries``, ``retry_count``...): only our
    fields are compared; headers are a map Kong stores as sent, so they compare whole."""
    body = http_log_plugin(Flavour.KONG_3, upstream="orders", **OPTIONS)
    stored = {
        "id": "p1",
        "name": "http-log",
        "enabled": True,
        "tags": [*body["tags"], "team=payments"],
        "config": {
            **body["config"],
            "retry_count": None,
            "queue": {**body["config"]["queue"], "max_entries": 10000, "max_bytes": None},
        },
    }
    (write,) = plan_attach("orders", ["s1"], {"s1": [stored]}, body)
    assert (write.action, write.ref, write.service) == ("keep", "p1", "s1")
    for change in (
        {"enabled": False},
        {"config": {**stored["config"], "headers": {**body["config"]["headers"], "X": "1"}}},
        {"config": {**stored["config"], "queue": {"max_batch_size": 1}}},
        {"tags": ["managed-by=kong-canary"]},
    ):
        (write,) = plan_attach("orders", ["s1"], {"s1": [{**stored, **change}]}, body)
        assert write.action == "update", change


def test_a_read_only_kong_gets_no_plugin_writes() -> None:
    """DB-less nodes and data planes answer writes with 405 (``kong/db/strategies/off``):
    refused before sending, as ``KongAdmin`` does for targets."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(200, json={"data": [], "next": None})

    http = httpx.Client(base_url="http://kong.test:8001", transport=httpx.MockTransport(handler))
    plugins = KongPlugins(http, writable=False)
    for call in (
        lambda: plugins.create("s1", {"name": "http-log"}),
        lambda: plugins.update("p1", "s1", {"name": "http-log"}),
        lambda: plugins.delete("p1"),
    ):
        with pytest.raises(KongReadOnly):
            call()
    assert sent == []
    assert plugins.plugins() == [] and sent == ["GET"]  # reads still go out


def test_a_create_that_loses_a_race_finds_the_winner() -> None:
    """Two replicas open the window at once: Kong's 409 on the plugin's cache key sends
    the loser back to plan again, and it keeps the winner's plugin."""
    kong = FakePluginsKong(services("orders"))
    admin = kong.admin(Flavour.KONG_3)
    original = kong.create

    def racing(service_id: str, body: dict[str, Any], mine: list) -> httpx.Response:
        kong.create = original  # type: ignore[method-assign]
        original(service_id, body, mine)  # the other replica wins...
        return original(service_id, body, [*mine, body])  # ...and we get the 409

    kong.create = racing  # type: ignore[method-assign]
    ids = attach_http_log(admin, "orders", **OPTIONS)
    assert ids == list(kong.plugins) and len(ids) == 1
