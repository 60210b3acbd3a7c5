"""The routers of workspace entities (``consumer_routes``, ``service_routes`` on their shared
``entity_routes`` base) answer every method on every path as they did before the base: the
grid below, on a fresh node each, against the answers the local Kong gave at commit 478eb5b
(``tests/fixtures/kong_local/entity-route-answers.json``: status, and the body of every
error; Konnect's trace id left out). Kong's rules behind them: ``kong/api/endpoints.lua``
(404 / 405, DELETE 204 whether or not found, PUT upserts, the body read before a missing
entity is reported), ``kong/db/strategies/off/init.lua`` (405 on writes without a database).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from sidecar.kong_local.server import create_wsgi_app

ANSWERS = json.loads(
    (
        Path(__file__).resolve().parents[1] / "fixtures/kong_local/entity-route-answers.json"
    ).read_text()
)["answers"]

SERVICE = "5b1f8a3e-0000-4000-8000-000000000001"
PLUGIN = "5b1f8a3e-0000-4000-8000-000000000002"
ROUTE = "5b1f8a3e-0000-4000-8000-000000000003"
CONSUMER = "5b1f8a3e-0000-4000-8000-000000000004"
ACL = "5b1f8a3e-0000-4000-8000-000000000005"
UNKNOWN = "5b1f8a3e-0000-4000-8000-0000000000ff"
SEED: list[tuple[str, dict[str, Any]]] = [
    ("/services", {"id": SERVICE, "name": "svc", "host": "orders"}),
    ("/services/svc/plugins", {"id": PLUGIN, "name": "prometheus", "instance_name": "guard"}),
    ("/services/svc/routes", {"id": ROUTE, "name": "r1", "paths": ["/r1"]}),
    ("/consumers", {"id": CONSUMER, "username": "bob"}),
    ("/consumers/bob/acls", {"id": ACL, "group": "vip"}),
]  # fmt: skip
ENTITY_PATHS = [
    "/services", "/services/svc", f"/services/{SERVICE}", "/services/missing",
    f"/services/{UNKNOWN}", "/services/svc/plugins", f"/services/svc/plugins/{PLUGIN}",
    "/services/svc/plugins/guard", f"/services/svc/plugins/{UNKNOWN}", "/services/missing/plugins",
    "/plugins", f"/plugins/{PLUGIN}", "/plugins/guard", "/plugins/missing", f"/plugins/{UNKNOWN}",
    "/routes", "/routes/r1", f"/routes/{ROUTE}", "/routes/missing", "/services/svc/routes",
    "/consumers", "/consumers/bob", f"/consumers/{CONSUMER}", "/consumers/missing",
    "/consumers/bob/acls", "/consumers/bob/acls/vip", f"/consumers/bob/acls/{ACL}",
    "/consumers/bob/acls/other", f"/consumers/missing/acls/{ACL}", "/acls", f"/acls/{ACL}",
    "/acls/vip", f"/acls/{UNKNOWN}",
]  # fmt: skip
KONNECT_PATHS = [p for p in ENTITY_PATHS if not p.startswith(("/consumers", "/acls"))]
BODIES = {"empty": None, "unknown-field": {"nonsense": 1}, "broken-json": b"{"}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PROFILES = {
    "3.9": "",
    "2.8": "",
    "dbless": "",
    "konnect": "/v2/control-planes/cp-local/core-entities",
}


def cases() -> list[tuple[str, str, str, str]]:
    out = []
    for profile in PROFILES:
        for path in KONNECT_PATHS if profile == "konnect" else ENTITY_PATHS:
            for method in METHODS:
                kinds = ["empty"] if method in ("GET", "DELETE", "OPTIONS") else list(BODIES)
                out += [(profile, method, path, kind) for kind in kinds]
    return out


def answer(profile: str, method: str, path: str, kind: str) -> dict[str, Any]:
    """A fresh seeded node's status for one request, and its body when it is an error."""
    client = Client(create_wsgi_app(profile))
    prefix = PROFILES[profile]
    if profile != "dbless":
        for seed_path, body in SEED:
            if profile == "konnect" and seed_path.startswith("/consumers"):
                continue
            if profile in ("konnect", "2.8") and "instance_name" in body:  # 3.x only
                body = {k: v for k, v in body.items() if k != "instance_name"}
            created = client.post(prefix + seed_path, json=body)
            assert created.status_code == 201, (profile, seed_path, created.get_data())
    body = BODIES[kind]
    if isinstance(body, bytes):
        reply = client.open(prefix + path, method=method, data=body,
                            content_type="application/json")  # fmt: skip
    else:
        reply = client.open(prefix + path, method=method, json=body)
    shown: dict[str, Any] = {"status": reply.status_code}
    if reply.status_code >= 400:
        error = json.loads(reply.get_data())
        error.pop("instance", None)
        shown["body"] = error
    return shown


@pytest.mark.parametrize(("profile", "method", "path", "kind"), cases())
def test_entity_routes_answer_as_before(profile: str, method: str, path: str, kind: str) -> None:
    key = f"{profile} {method} {path} {kind}"
    assert answer(profile, method, path, kind) == ANSWERS[key]


TAKEN = [
    ("/upstreams", {"id": SERVICE, "name": "other"}),
    ("/upstreams/orders/targets", {"id": SERVICE, "target": "10.9.9.9:80"}),
    ("/services", {"id": SERVICE, "name": "other", "host": "other"}),
    ("/routes", {"id": SERVICE, "name": "other", "paths": ["/other"]}),
    ("/plugins", {"id": SERVICE, "name": "http-log",
                  "config": {"http_endpoint": "http://log.local/"}}),
    ("/consumers", {"id": SERVICE, "username": "other"}),
    ("/acls", {"id": SERVICE, "group": "other", "consumer": {"id": CONSUMER}}),
]  # fmt: skip


@pytest.mark.parametrize("profile", ["3.9", "2.8"])
@pytest.mark.parametrize(("path", "body"), TAKEN)
def test_posting_an_entity_with_a_taken_id_is_a_primary_key_violation(
    profile: str, path: str, body: dict[str, Any]
) -> None:
    """A POST inserts; Postgres refuses an id already taken by the table's primary key, which
    ``kong/db/strategies/postgres/init.lua`` (``toerror``, no unique field named in the error)
    reports as ``errors:primary_key_violation`` (``kong/db/errors.lua``: code 3, "primary key
    violation on key '{id=...}'"), 400 by ``kong/api/endpoints.lua``. The entity holding
    the id is left as it was."""
    client = Client(create_wsgi_app(profile))
    taken = {"id": SERVICE, "name": "svc", "host": "orders"}
    assert client.post("/services", json=taken).status_code == 201
    assert client.post("/upstreams", json={"name": "orders"}).status_code == 201
    assert client.post("/consumers", json={"id": CONSUMER, "username": "bob"}).status_code == 201
    before = json.loads(client.get(f"/services/{SERVICE}").get_data())
    if path != "/services":  # the id is taken in that entity's own table
        table = path.split("/")[-1]
        first = client.post(path, json={**body, "id": UNKNOWN})
        assert first.status_code == 201, first.get_data()
        body = {**body, "id": UNKNOWN, **_renamed(table)}
        before = json.loads(client.get(_one_path(path, UNKNOWN)).get_data())
    answer = client.post(path, json=body)
    taken_id = body["id"]
    assert answer.status_code == 400, answer.get_data()
    assert json.loads(answer.get_data()) == {
        "code": 3,
        "name": "primary key violation",
        "message": f"primary key violation on key '{{id=\"{taken_id}\"}}'",
        "fields": {"id": taken_id},
    }
    held = client.get(_one_path(path, taken_id) if path != "/services" else f"/services/{SERVICE}")
    assert json.loads(held.get_data()) == before


def _renamed(table: str) -> dict[str, Any]:
    """The second POST's own unique fields, so that only its id collides."""
    return {
        "upstreams": {"name": "other2"},
        "targets": {"target": "10.9.9.8:80"},
        "routes": {"name": "other2", "paths": ["/other2"]},
        "plugins": {"name": "prometheus", "config": {}},
        "consumers": {"username": "other2"},
        "acls": {"group": "other2"},
    }[table]


def _one_path(collection: str, entity_id: str) -> str:
    return f"{collection}/{entity_id}"
