"""Konnect control-plane API (api-specs/konnect/control-planes-config/v2/openapi.yaml)."""

from __future__ import annotations

import httpx
import pytest

from tests.kong_local.conftest import StartKong

SEED = {
    "upstreams": [
        {
            "name": "orders",
            "targets": [{"target": "10.0.0.1:80", "weight": 100, "tags": ["variant=stable"]}],
        }
    ]
}


@pytest.fixture
def konnect(start_kong: StartKong, client_for) -> httpx.Client:
    server = start_kong("konnect", seed=SEED, konnect_token="kpat_test", control_plane_id="cp-1")
    assert server.admin_url.endswith("/v2/control-planes/cp-1")
    return client_for(server, headers={"Authorization": "Bearer kpat_test"})


def _assert_problem(r: httpx.Response, status: int) -> dict:
    """Konnect errors: application/problem+json {status,title,type,instance,detail}."""
    assert r.status_code == status
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status
    assert {"title", "type", "instance", "detail"} <= set(body)
    assert body["instance"].startswith("kong:trace:")
    return body


def test_bearer_token_is_required(konnect: httpx.Client) -> None:
    """Konnect API auth: ``Authorization: Bearer <kpat_/spat_ token>``."""
    r = httpx.get(f"{konnect.base_url}/core-entities/upstreams")
    _assert_problem(r, 401)


def test_targets_crud_shapes(konnect: httpx.Client) -> None:
    """Targets: GET/POST on the collection, GET/PUT(upsert, replaces)/DELETE(204 even when
    missing) on one target, no PATCH (405)."""
    upstream = konnect.get("/core-entities/upstreams/orders").json()
    targets = konnect.get(f"/core-entities/upstreams/{upstream['id']}/targets").json()["data"]
    assert [t["target"] for t in targets] == ["10.0.0.1:80"]
    assert targets[0]["failover"] is False and "updated_at" in targets[0]
    target_id = targets[0]["id"]
    base = f"/core-entities/upstreams/{upstream['id']}/targets"

    _assert_problem(konnect.patch(f"{base}/{target_id}", json={"weight": 5}), 405)
    replaced = konnect.put(f"{base}/{target_id}", json={"target": "10.0.0.1:80", "weight": 5})
    assert replaced.status_code == 200
    assert replaced.json()["weight"] == 5 and replaced.json()["tags"] is None  # PUT replaces

    new_id = "6f3c1a2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
    created = konnect.put(f"{base}/{new_id}", json={"target": "10.0.0.3:80", "weight": 1})
    assert created.status_code == 200 and created.json()["id"] == new_id

    dup = _assert_problem(konnect.post(base, json={"target": "10.0.0.1:80"}), 409)
    assert "UNIQUE violation" in dup["detail"]
    bad = _assert_problem(konnect.post(base, json={"target": "10.0.0.4:80", "weight": 70000}), 400)
    assert bad["invalid_parameters"] == [
        {"field": "weight", "reason": "value should be between 0 and 65535"}
    ]
    assert konnect.delete(f"{base}/{new_id}").status_code == 204
    assert konnect.delete(f"{base}/{new_id}").status_code == 204
    _assert_problem(konnect.get(f"{base}/{new_id}"), 404)


def test_config_hash_follows_writes(konnect: httpx.Client) -> None:
    """``GET expected-config-hash`` vs ``config_hash`` in ``GET nodes`` (DP Nodes in the spec;
    GetExpectedConfigHash model in Kong/sdk-konnect-go)."""
    before = konnect.get("/expected-config-hash").json()
    assert {"expected_hash", "created_at", "updated_at"} <= set(before)
    nodes = konnect.get("/nodes").json()
    assert nodes["items"][0]["config_hash"] == before["expected_hash"]
    upstream = konnect.get("/core-entities/upstreams/orders").json()
    konnect.post(
        f"/core-entities/upstreams/{upstream['id']}/targets", json={"target": "10.0.0.2:80"}
    )
    after = konnect.get("/expected-config-hash").json()["expected_hash"]
    assert after != before["expected_hash"]
    assert len(after) == 32


def test_unknown_control_plane_is_404(start_kong: StartKong) -> None:
    server = start_kong("konnect", control_plane_id="cp-1")
    _assert_problem(httpx.get(f"{server.url}/v2/control-planes/other/core-entities/upstreams"), 404)
