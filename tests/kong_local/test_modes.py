"""DB-less/data-plane, Enterprise workspaces and RBAC, and ``GET /`` per profile."""

from __future__ import annotations

import pytest

from tests.kong_local.conftest import StartKong

SEED = {"upstreams": [{"name": "orders", "targets": [{"target": "10.0.0.1:80", "weight": 100}]}]}


@pytest.mark.parametrize("profile", ["dbless", "data-plane"])
def test_writes_without_a_database_are_405(start_kong: StartKong, client_for, profile) -> None:
    """kong/db/strategies/off/init.lua: ``cannot <verb> '<entity>' entities when not using a
    database`` (code 12, 405); verbs create / update / create or update / remove."""
    client = client_for(start_kong(profile, seed=SEED))
    cases = [
        ("POST", "/upstreams/orders/targets", {"target": "10.0.0.2:80"}, "create", "targets"),
        ("PATCH", "/upstreams/orders/targets/10.0.0.1:80", {"weight": 1}, "update", "targets"),
        ("PUT", "/upstreams/orders/targets/10.0.0.1:80", {"weight": 1}, "update", "targets"),
        ("DELETE", "/upstreams/orders/targets/10.0.0.1:80", None, "remove", "targets"),
        ("POST", "/upstreams", {"name": "x"}, "create", "upstreams"),
        ("PATCH", "/upstreams/orders", {"slots": 100}, "update", "upstreams"),
        ("PUT", "/upstreams/orders", {}, "create or update", "upstreams"),
        ("DELETE", "/upstreams/orders", None, "remove", "upstreams"),
    ]
    for method, path, body, verb, entity in cases:
        r = client.request(method, path, json=body)
        assert r.status_code == 405, (method, path)
        assert r.json() == {
            "code": 12,
            "name": "operation unsupported",
            "message": f"cannot {verb} '{entity}' entities when not using a database",
        }
    assert client.get("/upstreams/orders/targets/10.0.0.1:80").json()["weight"] == 100
    info = client.get("/").json()
    assert info["configuration"]["database"] == "off"
    assert info["configuration"]["role"] == (
        "data_plane" if profile == "data-plane" else "traditional"
    )


@pytest.mark.parametrize(
    ("profile", "version", "plugin_value", "edition"),
    [
        ("2.8", "2.8.5", True, None),
        ("3.4", "3.4.2", dict, None),
        ("3.9", "3.9.3", dict, "community"),
    ],
)
def test_root_identifies_the_version(
    start_kong: StartKong, client_for, profile, version, plugin_value, edition
) -> None:
    """kong/api/routes/kong.lua: version, edition (3.6+), plugins.available_on_server map
    (name -> true in 2.x, {version, priority} in 3.x); header Server: kong/<version>."""
    client = client_for(start_kong(profile))
    r = client.get("/")
    assert r.headers["Server"] == f"kong/{version}"
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(r.headers["X-Kong-Admin-Latency"]) >= 0
    body = r.json()
    assert body["version"] == version
    assert body.get("edition") == edition
    value = body["plugins"]["available_on_server"]["prometheus"]
    if plugin_value is True:
        assert value is True
    else:
        assert set(value) == {"version", "priority"}
    assert body["configuration"]["database"] == "postgres"


def test_workspaces_prefix_paths_and_isolate_entities(start_kong: StartKong, client_for) -> None:
    """Kong/docs.konghq.com app/_includes/md/gateway/admin-api-workspaces.md:
    ``/{workspace}/…``, no prefix = default; an unknown workspace is 404
    "Workspace '<name>' not found" (EE 2.8.0.0 answer in Kong/deck#158)."""
    client = client_for(start_kong("3.4", seed=SEED, workspaces=["SRE"]))
    assert client.post("/SRE/upstreams", json={"name": "orders"}).status_code == 201
    assert (
        client.post("/SRE/upstreams/orders/targets", json={"target": "10.9.9.9:80"}).status_code
        == 201
    )
    sre = [t["target"] for t in client.get("/SRE/upstreams/orders/targets").json()["data"]]
    default = [t["target"] for t in client.get("/upstreams/orders/targets").json()["data"]]
    explicit = [t["target"] for t in client.get("/default/upstreams/orders/targets").json()["data"]]
    assert sre == ["10.9.9.9:80"] and default == explicit == ["10.0.0.1:80"]
    r = client.get("/nope/upstreams")
    assert r.status_code == 404 and r.json() == {"message": "Workspace 'nope' not found"}
    assert client.get("/").json()["version"] == "3.4.2.0"  # EE versions have four parts


def test_rbac_requires_the_admin_token(start_kong: StartKong, client_for) -> None:
    """EE RBAC (securityScheme adminToken, header Kong-Admin-Token): no token -> 401 "Invalid
    credentials. Token or User credentials required" (EE 3.11 answer); wrong token -> 401
    "Invalid RBAC credentials" (EE rbac.lua, developer.konghq.com RBAC how-to)."""
    server = start_kong("3.9", seed=SEED, rbac_token="s3cret")
    client = client_for(server)
    r = client.get("/upstreams/orders/targets")
    assert r.status_code == 401
    assert r.json() == {"message": "Invalid credentials. Token or User credentials required"}
    r = client.get("/upstreams/orders/targets", headers={"Kong-Admin-Token": "nope"})
    assert r.status_code == 401 and r.json() == {"message": "Invalid RBAC credentials"}
    ok = client.get("/upstreams/orders/targets", headers={"Kong-Admin-Token": "s3cret"})
    assert ok.status_code == 200 and len(ok.json()["data"]) == 1
    info = client.get("/", headers={"Kong-Admin-Token": "s3cret"}).json()
    assert info["edition"] == "enterprise"
