"""The local Kong's routes (``/routes``, ``/services/{s}/routes``), per profile, over real HTTP.

Sources (Kong/kong 2.8.5, 3.4.2): ``kong/db/schema/entities/routes.lua`` (defaults; ``name``
unique; ``service`` a foreign key without ``on_delete``), ``routes_subschemas.lua`` (an http(s)
route needs a matcher), ``plugins.lua`` (``route`` foreign key, cascade from route to plugins),
``kong/db/errors.lua`` (codes 3, 4, 5). No recording of these entities exists.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sidecar.kong_local.server import serve_in_thread


def _serve(profile: str) -> Iterator[httpx.Client]:
    konnect = profile == "konnect"
    server = serve_in_thread(profile, konnect_token="kpat" if konnect else None)
    base = server.admin_url + ("/core-entities" if konnect else "")
    try:
        with httpx.Client(base_url=base, headers={"Authorization": "Bearer kpat"}) as client:
            yield client
    finally:
        server.stop()


@pytest.fixture(params=("2.8", "3.9", "konnect"))
def admin(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    yield from _serve(request.param)


@pytest.fixture(params=("2.8", "3.9"))
def kong_admin(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """Kong's own error bodies (Konnect answers problem+json instead)."""
    yield from _serve(request.param)


def _create(client: httpx.Client, path: str, body: dict) -> dict:
    answer = client.post(path, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_route_belongs_to_its_service_and_is_found_by_name_or_id(admin):
    svc = _create(admin, "/services", {"name": "orders-svc", "host": "orders"})
    other = _create(admin, "/services", {"name": "payments", "host": "payments"})
    route = _create(admin, "/services/orders-svc/routes", {"name": "refunds", "paths": ["/r"]})
    _create(admin, f"/services/{other['id']}/routes", {"paths": ["/p"]})  # unnamed
    assert route["service"] == {"id": svc["id"]}
    assert (route["protocols"], route["strip_path"], route["preserve_host"]) == (
        ["http", "https"], True, False,
    )  # fmt: skip
    listed = admin.get(f"/services/{svc['id']}/routes").json()
    assert [r["name"] for r in listed["data"]] == ["refunds"]
    assert len(admin.get("/routes").json()["data"]) == 2
    assert admin.get("/routes/refunds").json()["id"] == route["id"]
    assert admin.get(f"/routes/{route['id']}").json()["name"] == "refunds"
    assert admin.get("/routes/nope").status_code == 404


def test_route_names_are_unique_and_a_route_needs_a_matcher(kong_admin):
    admin = kong_admin
    _create(admin, "/services", {"name": "orders-svc", "host": "orders"})
    _create(admin, "/services/orders-svc/routes", {"name": "refunds", "paths": ["/r"]})
    twice = admin.post("/services/orders-svc/routes", json={"name": "refunds", "hosts": ["a"]})
    assert (twice.status_code, twice.json()["code"]) == (409, 5)
    bare = admin.post("/services/orders-svc/routes", json={"name": "bare"})
    assert bare.status_code == 400
    assert bare.json()["fields"]["@entity"] == [
        "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
    ]
    unknown = admin.post("/services/orders-svc/routes", json={"paths": ["/x"], "nope": 1})
    assert unknown.json()["fields"] == {"nope": "unknown field"}


def test_route_plugins_need_the_route_and_go_with_it(kong_admin):
    admin = kong_admin
    _create(admin, "/services", {"name": "orders-svc", "host": "orders"})
    route = _create(admin, "/services/orders-svc/routes", {"name": "refunds", "paths": ["/r"]})
    missing = admin.post("/plugins", json={"name": "prometheus", "route": {"id": svc_id()}})
    assert (missing.status_code, missing.json()["code"]) == (400, 4)
    _create(admin, "/plugins", {"name": "prometheus", "route": {"id": route["id"]}})
    refused = admin.delete("/services/orders-svc")
    assert (refused.status_code, refused.json()["code"]) == (400, 3)
    assert refused.json()["message"] == (
        "an existing 'routes' entity references this 'services' entity"
    )
    assert admin.delete("/routes/refunds").status_code == 204
    assert admin.get("/plugins").json()["data"] == []
    assert admin.delete("/services/orders-svc").status_code == 204


def svc_id() -> str:
    return "00000000-0000-4000-8000-000000000001"
