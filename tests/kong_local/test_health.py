"""``/upstreams/{u}/health``: balancer view, DNS fan-out, manual overrides, per version."""

from __future__ import annotations

from tests.kong_local.conftest import StartKong


def _by_target(body: dict) -> dict[str, dict]:
    return {row["target"]: row for row in body["data"]}


def test_hostname_fans_out_with_full_weight_per_address(start_kong: StartKong, client_for) -> None:
    """[DOCS] 2.8 loadbalancing.md: "the weight is used for the individual entries, not for the
    whole"; each A record is an address with the target's weight; total = sum."""
    server = start_kong(
        "3.9",
        seed={"upstreams": [{"name": "orders"}]},
        dns={"canary.svc": ["10.1.0.1", "10.1.0.2", "10.1.0.3"]},
    )
    client = client_for(server)
    assert (
        client.post(
            "/upstreams/orders/targets", json={"target": "canary.svc:8080", "weight": 10}
        ).status_code
        == 201
    )
    row = _by_target(client.get("/upstreams/orders/health").json())["canary.svc:8080"]
    assert row["health"] == "HEALTHCHECKS_OFF"
    data = row["data"]
    assert data["weight"] == {"total": 30, "available": 30, "unavailable": 0}
    assert [a["ip"] for a in data["addresses"]] == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    assert {a["weight"] for a in data["addresses"]} == {10}
    assert data["nodeWeight"] == 10 and data["host"] == "canary.svc" and data["port"] == 8080


def test_unresolvable_hostname_is_dns_error_and_localhost_resolves(
    start_kong: StartKong, client_for
) -> None:
    """kong/db/dao/targets.lua page_for_upstream_with_health: no address -> DNS_ERROR;
    localhost comes from /etc/hosts (recorded 3.x step "hostname target" accepts it)."""
    seed = {
        "upstreams": [
            {
                "name": "orders",
                "targets": [
                    {"target": "nowhere.invalid:80", "weight": 5},
                    {"target": "localhost:9001"},
                ],
            }
        ]
    }
    client = client_for(start_kong("3.9", seed=seed))
    rows = _by_target(client.get("/upstreams/orders/health").json())
    assert rows["nowhere.invalid:80"]["health"] == "DNS_ERROR"
    assert rows["nowhere.invalid:80"]["data"]["addresses"] == []
    assert rows["localhost:9001"]["data"]["addresses"][0]["ip"] == "127.0.0.1"


def test_3x_has_no_balancer_until_traffic(start_kong: StartKong, client_for) -> None:
    """Recorded 3.4.2/3.9.3 step "health of upstream": no health/data before a proxied request
    (balancers are built lazily); 2.8.5 builds them eagerly (same step, recorded)."""
    server = start_kong("3.9")
    client = client_for(server)
    client.post("/upstreams", json={"name": "fresh"})
    client.post("/upstreams/fresh/targets", json={"target": "10.0.0.1:80"})
    row = client.get("/upstreams/fresh/health").json()["data"][0]
    assert "health" not in row and "data" not in row
    assert "data" not in client.get("/upstreams/fresh/health?balancer_health=1").json()
    server.app.mark_balancer_ready("fresh")
    row = client.get("/upstreams/fresh/health").json()["data"][0]
    assert row["health"] == "HEALTHCHECKS_OFF"
    balancer = client.get("/upstreams/fresh/health", params={"balancer_health": 1}).json()["data"]
    assert balancer["health"] == "HEALTHCHECKS_OFF" and balancer["balancer_health"] == "HEALTHY"

    old = start_kong("2.8")
    client28 = client_for(old)
    client28.post("/upstreams", json={"name": "fresh"})
    client28.post("/upstreams/fresh/targets", json={"target": "10.0.0.1:80"})
    assert client28.get("/upstreams/fresh/health").json()["data"][0]["health"] == "HEALTHCHECKS_OFF"


def test_manual_overrides_use_post_in_2x_and_put_in_3x(start_kong: StartKong, client_for) -> None:
    """kong/api/routes/upstreams.lua: 2.x registers POST …/healthy|unhealthy, 3.x PUT; 204."""
    seed = {"upstreams": [{"name": "orders", "targets": [{"target": "10.0.0.1:80", "weight": 7}]}]}
    for profile, verb, wrong in (("2.8", "POST", "PUT"), ("3.9", "PUT", "POST")):
        client = client_for(start_kong(profile, seed=seed))
        path = "/upstreams/orders/targets/10.0.0.1:80/unhealthy"
        assert client.request(wrong, path).status_code == 405
        assert client.request(verb, path).status_code == 204
        row = client.get("/upstreams/orders/health").json()["data"][0]
        assert row["health"] == "UNHEALTHY", profile
        assert row["data"]["weight"] == {"total": 7, "available": 0, "unavailable": 7}
        assert (
            client.request(verb, "/upstreams/orders/targets/10.0.0.1:80/healthy").status_code == 204
        )
        assert client.get("/upstreams/orders/health").json()["data"][0]["health"] == "HEALTHY"


def test_set_health_and_weight_zero(start_kong: StartKong, client_for) -> None:
    """3.x healthcheckers.lua: weight-0 targets are not checked -> HEALTHCHECKS_OFF."""
    seed = {
        "upstreams": [
            {
                "name": "orders",
                "targets": [
                    {"target": "10.0.0.1:80", "weight": 100},
                    {"target": "10.0.0.2:80", "weight": 0},
                ],
            }
        ]
    }
    server = start_kong("3.4", seed=seed)
    client = client_for(server)
    server.app.set_health("orders", "10.0.0.1:80", "UNHEALTHY")
    server.app.set_health("orders", "10.0.0.2:80", "UNHEALTHY")
    rows = _by_target(client.get("/upstreams/orders/health").json())
    assert rows["10.0.0.1:80"]["health"] == "UNHEALTHY"
    assert rows["10.0.0.2:80"]["health"] == "HEALTHCHECKS_OFF"
    assert rows["10.0.0.2:80"]["data"]["weight"]["total"] == 0


def test_active_checks_make_targets_healthy(start_kong: StartKong, client_for) -> None:
    """healthcheckers.lua is_upstream_using_healthcheck: with an active interval the address
    states are HEALTHY/UNHEALTHY instead of HEALTHCHECKS_OFF."""
    seed = {
        "upstreams": [
            {
                "name": "orders",
                "healthchecks": {"active": {"healthy": {"interval": 5}}},
                "targets": [{"target": "10.0.0.1:80"}],
            }
        ]
    }
    client = client_for(start_kong("3.9", seed=seed))
    assert client.get("/upstreams/orders/health").json()["data"][0]["health"] == "HEALTHY"
    balancer = client.get("/upstreams/orders/health?balancer_health=1").json()["data"]
    assert balancer["health"] == "HEALTHY"
