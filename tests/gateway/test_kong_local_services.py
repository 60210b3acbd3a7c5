"""The local Kong's services and plugins routes, per profile, over real HTTP.

Shapes come from Kong's sources, not from recordings (none exist for these entities):
``kong/db/schema/entities/plugins.lua`` (``cache_key = {name, route, service, consumer}``,
``instance_name``/``updated_at`` in 3.x, the "plugin '%s' not enabled" subschema error),
``kong/db/schema/entities/services.lua``, ``kong/plugins/http-log/schema.lua`` (2.8:
``queue_size`` 1, ``flush_timeout`` 2, ``retry_count`` 10 and ``typedefs.headers`` = name ->
array of strings; 3.x: those three deprecated with no default, string headers, ``queue`` =
``kong/tools/queue_schema.lua`` with ``max_batch_size`` 1..1,000,000), the prometheus schema
(metric groups opt-in from 3.0) and Kong/sdk-konnect-go ``docs/sdks/plugins`` (Konnect: PUT
upsert, no PATCH). The sidecar's own service fields (``host``, ``port``...) match the
``service`` object Kong 2.8.5/3.4.2/3.9.3 serialised into the recorded http-log entries.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sidecar.kong_local.server import serve_in_thread
from tests.gateway.conftest import VERSIONS, load

PROFILES = ("2.8", "3.4", "3.9", "konnect")
ENDPOINT = "http://sidecar.test:8080/v1/kong-log"


@pytest.fixture(params=PROFILES)
def kong(request) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    profile = request.param
    server = serve_in_thread(profile, konnect_token="kpat" if profile == "konnect" else None)
    base = server.admin_url + ("/core-entities" if profile == "konnect" else "")
    with httpx.Client(base_url=base, headers={"Authorization": "Bearer kpat"}) as client:
        client.profile = profile  # type: ignore[attr-defined]
        yield client
    server.stop()


def _is_3x(kong: httpx.Client) -> bool:
    return kong.profile != "2.8"  # type: ignore[attr-defined]


def _http_log(kong: httpx.Client, **config: object) -> dict:
    base: dict = {"http_endpoint": ENDPOINT}
    if _is_3x(kong):
        base["queue"] = {"max_batch_size": 200, "max_coalescing_delay": 1}
        base["headers"] = {"Authorization": "Bearer x"}
    else:
        base.update(queue_size=200, flush_timeout=1, headers={"Authorization": ["Bearer x"]})
    return {"name": "http-log", "config": {**base, **config}, "tags": ["managed-by=kong-canary"]}


def _service(kong: httpx.Client, name: str = "orders", host: str = "orders") -> dict:
    response = kong.post("/services", json={"name": name, "host": host})
    assert response.status_code == 201, response.text
    return response.json()


def test_service_has_the_fields_kong_serialises() -> None:
    """Same keys and defaults as the ``service`` in every recorded http-log entry."""
    with serve_in_thread("3.4") as server:
        created = httpx.post(f"{server.url}/services", json={"name": "orders", "host": "orders"})
    assert created.status_code == 201
    service = created.json()
    for version in VERSIONS:
        recorded = load(version, "http-log-batches")["first_batches"][0]["body"][0]["service"]
        for key, value in recorded.items():
            if key == "ws_id":  # workspaces are not rendered by the local server
                continue
            assert key in service, (version, key)
            if key not in ("id", "created_at", "updated_at"):
                assert service[key] == value, (version, key)


def test_http_log_on_a_service_gets_the_version_defaults(kong: httpx.Client) -> None:
    service = _service(kong)
    created = kong.post(f"/services/{service['id']}/plugins", json=_http_log(kong))
    assert created.status_code == 201, created.text
    plugin = created.json()
    assert plugin["service"] == {"id": service["id"]}
    assert plugin["route"] is None and plugin["consumer"] is None and plugin["enabled"] is True
    assert plugin["protocols"] == ["grpc", "grpcs", "http", "https"]
    config = plugin["config"]
    assert config["http_endpoint"] == ENDPOINT and config["method"] == "POST"
    assert config["timeout"] == 10000 and config["keepalive"] == 60000
    if _is_3x(kong):
        assert {"instance_name", "updated_at"} <= set(plugin)
        assert config["queue"]["max_batch_size"] == 200
        assert config["queue"]["max_entries"] == 10000  # default filled in
        assert config["queue"]["max_retry_time"] == 60
        assert config["queue_size"] is None and config["retry_count"] is None
        assert config["headers"] == {"Authorization": "Bearer x"}
    else:
        assert "instance_name" not in plugin and "updated_at" not in plugin
        assert "queue" not in config
        assert config["queue_size"] == 200 and config["retry_count"] == 10
        assert config["headers"] == {"Authorization": ["Bearer x"]}
    assert kong.get(f"/plugins/{plugin['id']}").json() == plugin
    listed = kong.get(f"/services/{service['id']}/plugins").json()["data"]
    assert listed == [plugin]


def test_one_plugin_of_a_name_per_service(kong: httpx.Client) -> None:
    service = _service(kong)
    assert kong.post(f"/services/{service['id']}/plugins", json=_http_log(kong)).is_success
    again = kong.post(f"/services/{service['id']}/plugins", json=_http_log(kong))
    assert again.status_code == 409
    if kong.profile != "konnect":  # type: ignore[attr-defined]
        body = again.json()
        assert (body["code"], body["name"]) == (5, "unique constraint violation")
        assert body["fields"]["service"] == {"id": service["id"]}
    other = _service(kong, "orders-admin", "orders")
    assert kong.post(f"/services/{other['id']}/plugins", json=_http_log(kong)).is_success


@pytest.mark.parametrize(
    ("plugin", "field"),
    [
        ({"name": "canary-weights"}, "name"),  # not a bundled plugin we know: not enabled
        ({"name": "http-log", "config": {}}, "config"),  # http_endpoint is required
        ({"name": "http-log", "config": {"http_endpoint": ENDPOINT, "method": "GET"}}, "config"),
        ({"name": "http-log", "config": {"http_endpoint": ENDPOINT, "nope": 1}}, "config"),
        ({"name": "http-log", "config": {"http_endpoint": ENDPOINT}, "enabled": "yes"}, "enabled"),
    ],
)
def test_bad_plugins_are_schema_violations(kong: httpx.Client, plugin: dict, field: str) -> None:
    service = _service(kong)
    response = kong.post(f"/services/{service['id']}/plugins", json=plugin)
    assert response.status_code == 400
    if kong.profile == "konnect":  # type: ignore[attr-defined]
        assert "schema violation" in response.json()["detail"]
    else:
        body = response.json()
        assert body["name"] == "schema violation" and field in body["fields"]
    assert kong.get("/plugins").json()["data"] == []


def test_the_batching_fields_follow_the_version(kong: httpx.Client) -> None:
    """2.8 has no ``queue`` record; 3.x wants string header values and bounds the batch."""
    service = _service(kong)
    path = f"/services/{service['id']}/plugins"
    if _is_3x(kong):
        bad = [
            _http_log(kong, headers={"Authorization": ["Bearer x"]}),
            _http_log(kong, queue={"max_batch_size": 0}),
            _http_log(kong, headers={"Host": "sidecar"}),
        ]
    else:
        bad = [
            _http_log(kong, queue={"max_batch_size": 200}),
            _http_log(kong, headers={"Authorization": "Bearer x"}),
        ]
    for body in bad:
        assert kong.post(path, json=body).status_code == 400, body
    assert kong.get("/plugins").json()["data"] == []


def test_prometheus_metric_groups_are_opt_in_from_3x(kong: httpx.Client) -> None:
    service = _service(kong)
    created = kong.post(f"/services/{service['id']}/plugins", json={"name": "prometheus"})
    assert created.status_code == 201
    config = created.json()["config"]
    if _is_3x(kong):
        assert config["status_code_metrics"] is False and config["latency_metrics"] is False
    else:
        assert config == {"per_consumer": False}


def test_updates_and_deletes(kong: httpx.Client) -> None:
    service = _service(kong)
    plugin = kong.post(f"/services/{service['id']}/plugins", json=_http_log(kong)).json()
    path = f"/plugins/{plugin['id']}"
    if kong.profile == "konnect":  # type: ignore[attr-defined]
        assert kong.patch(path, json={"enabled": False}).status_code == 405
        body = {**_http_log(kong), "enabled": False, "service": {"id": service["id"]}}
        updated = kong.put(path, json=body)
    else:  # PATCH merges records (config, queue) and replaces maps (headers)
        updated = kong.patch(path, json={"enabled": False, "config": {"timeout": 500}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["enabled"] is False
    assert updated.json()["config"]["http_endpoint"] == ENDPOINT
    assert updated.json()["service"] == {"id": service["id"]}
    assert kong.delete(path).status_code == 204
    assert kong.delete(path).status_code == 204  # gone already: still 204
    assert kong.get(path).status_code == 404


def test_deleting_a_service_cascades_to_its_plugins(kong: httpx.Client) -> None:
    service = _service(kong)
    kept = _service(kong, "payments", "payments")
    kong.post(f"/services/{service['id']}/plugins", json=_http_log(kong)).raise_for_status()
    kong.post(f"/services/{kept['id']}/plugins", json=_http_log(kong)).raise_for_status()
    assert kong.delete(f"/services/{service['id']}").status_code == 204
    left = kong.get("/plugins").json()["data"]
    assert [p["service"]["id"] for p in left] == [kept["id"]]


def test_lists_page_with_an_opaque_offset(kong: httpx.Client) -> None:
    made = {_service(kong, f"s{n}", f"h{n}")["id"] for n in range(5)}
    seen: list[str] = []
    params: dict = {"size": 2}
    while True:
        page = kong.get("/services", params=params).json()
        seen += [s["id"] for s in page["data"]]
        if not page.get("offset"):
            break
        params = {"size": 2, "offset": page["offset"]}
    assert sorted(seen) == sorted(made) and len(seen) == 5


def test_plugins_need_an_existing_service(kong: httpx.Client) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    assert kong.post(f"/services/{missing}/plugins", json=_http_log(kong)).status_code == 404
    body = {**_http_log(kong), "service": {"id": missing}}
    response = kong.post("/plugins", json=body)
    assert response.status_code == 400
    if kong.profile != "konnect":  # type: ignore[attr-defined]
        assert response.json()["name"] == "foreign key violation"


def test_dbless_refuses_writes_and_lists_nothing() -> None:
    with serve_in_thread("dbless") as server:
        created = httpx.post(f"{server.url}/services", json={"name": "s", "host": "orders"})
        listed = httpx.get(f"{server.url}/plugins")
    assert created.status_code == 405 and created.json()["code"] == 12
    assert listed.status_code == 200 and listed.json()["data"] == []
