"""Entity rules not covered by the recordings."""

from __future__ import annotations

import pytest

from sidecar.kong_local.addresses import format_target
from tests.kong_local.conftest import StartKong


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("10.0.0.2", "10.0.0.2:8000"),
        ("010.000.000.001:81", "10.0.0.1:81"),
        ("[::1]:80", "[0000:0000:0000:0000:0000:0000:0000:0001]:80"),
        ("::1", "[0000:0000:0000:0000:0000:0000:0000:0001]:8000"),
        ("My-Host.example:9000", "My-Host.example:9000"),
        ("not a host!:80", None),
        ("bad-.example", None),
        ("10.0.0.1:70000", None),
        # Lua's $ is the end of the string and %d is ASCII (utils.lua normalize_ipv4,
        # check_hostname); Python's $ and \d took these (issue 13 item 13)
        ("10.0.0.1:80\n", None),
        ("My-Host.example:80\n", None),
        ("My-Host.example\n", None),
        ("\u0661\u0660.0.0.1:80", None),
    ],
)
def test_target_formatting_follows_kong_utils(raw: str, stored: str | None) -> None:
    """kong/tools/utils.lua normalize_ipv4/normalize_ipv6 (expanded, lower-case groups),
    check_hostname (case kept), format_host; DEFAULT_PORT 8000 (dao/targets.lua)."""
    assert format_target(raw) == stored


def test_2x_post_matches_the_raw_string_only(start_kong: StartKong, client_for) -> None:
    """2.8 upstreams.lua POST: an existing target is looked up by the raw string; without a
    port the raw string never matches the stored ``host:8000``, so a second row is created
    (no unique constraint before 3.0)."""
    client = client_for(start_kong("2.8", seed={"upstreams": [{"name": "orders"}]}))
    assert client.post("/upstreams/orders/targets", json={"target": "10.0.0.2"}).status_code == 201
    again = client.post("/upstreams/orders/targets", json={"target": "10.0.0.2", "weight": 1})
    assert again.status_code == 201 and "Deprecation" not in again.headers
    update = client.post("/upstreams/orders/targets", json={"target": "10.0.0.2:8000", "weight": 3})
    assert update.status_code == 200 and update.headers["Deprecation"] == "true"
    rows = client.get("/upstreams/orders/targets").json()["data"]
    assert [t["target"] for t in rows] == ["10.0.0.2:8000", "10.0.0.2:8000"]


def test_3x_post_normalises_before_the_unique_check(start_kong: StartKong, client_for) -> None:
    """3.x: cache_key (upstream, target) is unique after normalisation (Kong/deck#1556)."""
    client = client_for(start_kong("3.9", seed={"upstreams": [{"name": "orders"}]}))
    client.post("/upstreams/orders/targets", json={"target": "10.0.0.2"})
    r = client.post("/upstreams/orders/targets", json={"target": "10.0.0.2"})
    assert r.status_code == 409 and r.json()["fields"]["target"] == "10.0.0.2:8000"


def test_form_and_multipart_bodies_with_tags(start_kong: StartKong, client_for) -> None:
    """Admin API accepts form-urlencoded and multipart (spec tests; recorded form POST)."""
    client = client_for(start_kong("3.9", seed={"upstreams": [{"name": "orders"}]}))
    r = client.post(
        "/upstreams/orders/targets",
        data={"target": "10.0.0.7:80", "weight": "4", "tags[]": ["a", "b"]},
    )
    assert r.status_code == 201 and r.json()["tags"] == ["a", "b"] and r.json()["weight"] == 4
    r = client.post(
        "/upstreams/orders/targets", files={"target": (None, "10.0.0.8:80"), "weight": (None, "x")}
    )
    assert r.status_code == 400 and r.json()["fields"] == {"weight": "expected an integer"}


def test_unknown_fields_and_missing_target(start_kong: StartKong, client_for) -> None:
    """kong/db/schema/init.lua: unknown keys -> "unknown field"; required -> "required field
    missing"."""
    client = client_for(start_kong("3.4", seed={"upstreams": [{"name": "orders"}]}))
    r = client.post("/upstreams/orders/targets", json={"weight": 1, "colour": "red"})
    assert r.status_code == 400
    assert r.json()["fields"] == {"colour": "unknown field", "target": "required field missing"}
    assert r.json()["message"].startswith("2 schema violations (")


def test_upstream_name_rules_and_cascade(start_kong: StartKong, client_for) -> None:
    """upstreams.lua validate_name: no IPs, no ports; targets cascade on upstream delete."""
    client = client_for(start_kong("3.9"))
    r = client.post("/upstreams", json={"name": "10.0.0.1"})
    assert r.json()["fields"]["name"] == "Invalid name ('10.0.0.1'); no ip addresses allowed"
    r = client.post("/upstreams", json={"name": "svc:80"})
    assert r.json()["fields"]["name"] == "Invalid name ('svc:80'); no port allowed"
    up = client.post("/upstreams", json={"name": "svc"}).json()
    client.post("/upstreams/svc/targets", json={"target": "10.0.0.1:80"})
    assert client.delete(f"/upstreams/{up['id']}").status_code == 204
    assert client.get("/upstreams/svc/targets").status_code == 404
    client.post("/upstreams", json={"name": "svc"})
    assert client.get("/upstreams/svc/targets").json()["data"] == []


def test_methods_and_unknown_routes(start_kong: StartKong, client_for) -> None:
    """endpoints.lua: PATCH/DELETE on a collection -> 405; global /targets disabled -> 404."""
    client = client_for(start_kong("3.9", seed={"upstreams": [{"name": "orders"}]}))
    assert client.patch("/upstreams/orders/targets", json={}).json() == {
        "message": "Method not allowed"
    }
    assert client.delete("/upstreams/orders/targets").status_code == 405
    assert client.get("/targets/abc").json() == {"message": "Not found"}
    assert client.get("/upstreams/orders/targets/10.9.9.9:80").status_code == 404
