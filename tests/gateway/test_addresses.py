"""Address -> variant maps from ``/upstreams/{u}/health`` (recorded and hand-built bodies, all
read by the real ``sidecar.kong.parse``), and the resolver's TTL / refresh-on-miss rules."""

from __future__ import annotations

import pytest

from sidecar.errors import ApiError
from sidecar.gateway.addresses import (
    AMBIGUOUS_ADDRESS,
    UNKNOWN_ADDRESS,
    UNKNOWN_UPSTREAM,
    UNMANAGED_UPSTREAM,
    VariantResolver,
    build_address_map,
    canonical_ip,
)
from sidecar.kong.models import Address, Flavour, TargetHealth, UpstreamHealth
from sidecar.kong.parse import Call, upstream_health
from tests.gateway.conftest import VERSIONS, health_body, variant_by_port


def health_item(target: str, tags: list[str] | None, addresses: list[tuple[str, int]] | None):  # type: ignore[no-untyped-def]
    item = {"id": f"id-{target}", "target": target, "weight": 100, "tags": tags}
    if addresses is not None:
        item["health"] = "HEALTHCHECKS_OFF"
        item["data"] = {
            "addresses": [
                {"ip": ip, "port": port, "weight": 100, "health": "HEALTHCHECKS_OFF"}
                for ip, port in addresses
            ],
            "weight": {"total": 100 * len(addresses), "available": 0, "unavailable": 0},
        }
    return item


def health(*items: dict) -> dict:
    return {"data": list(items), "next": None, "node_id": "n-1"}


def parsed(body: dict) -> UpstreamHealth:
    return upstream_health(body["data"], body.get("node_id"), Call("GET", "/upstreams/u/health"))


@pytest.mark.parametrize("version", VERSIONS)
def test_recorded_health_maps_each_port_to_its_tagged_variant(version: str) -> None:
    amap = build_address_map(parsed(health_body(version)))
    expected = {("127.0.0.1", port): v for port, v in variant_by_port(version).items()}
    assert amap.variants == expected
    assert set(expected.values()) == {"stable", "baseline", "canary"}


def test_hostname_target_with_several_ips_maps_every_address() -> None:
    body = health(
        health_item(
            "canary.svc.local:8080",
            ["variant=canary"],
            [("10.1.0.1", 8080), ("10.1.0.2", 8080), ("10.1.0.3", 8080)],
        ),
        health_item("10.0.0.1:8080", None, [("10.0.0.1", 8080)]),  # untagged: stable
        health_item("10.0.0.9:8080", ["variant=blue"], [("10.0.0.9", 8080)]),
    )
    amap = build_address_map(parsed(body)).variants
    assert [amap[(f"10.1.0.{i}", 8080)] for i in (1, 2, 3)] == ["canary"] * 3
    assert amap[("10.0.0.1", 8080)] == "stable"
    assert amap[("10.0.0.9", 8080)] == "other"
    assert ("10.1.0.1", 80) not in amap  # the port is part of the key


def test_one_address_in_two_variants_is_ambiguous_not_guessed() -> None:
    body = health(
        health_item("a.local:80", ["variant=stable"], [("10.0.0.1", 80)]),
        health_item("b.local:80", ["variant=canary"], [("10.0.0.1", 80)]),
    )
    amap = build_address_map(parsed(body))
    assert ("10.0.0.1", 80) not in amap.variants and ("10.0.0.1", 80) in amap.ambiguous
    resolver = VariantResolver(lambda u: parsed(body))
    resolver.map_for("orders")
    assert resolver.on_miss("orders", ("10.0.0.1", 80)) == (None, AMBIGUOUS_ADDRESS)


def test_without_balancer_data_ip_targets_map_to_themselves() -> None:
    """A control plane (or Konnect) has no addresses: only IP-literal targets can be mapped."""
    body = health(
        health_item("10.0.0.1:80", ["variant=stable"], None),
        health_item("[0000:0000:0000:0000:0000:0000:0000:0001]:80", ["variant=canary"], None),
        health_item("canary.local:80", ["variant=canary"], None),
    )
    amap = build_address_map(parsed(body)).variants
    assert amap == {("10.0.0.1", 80): "stable", ("::1", 80): "canary"}


def test_ipv6_spellings_meet_on_a_miss(clock) -> None:  # type: ignore[no-untyped-def]
    body = health(health_item("[::1]:80", ["variant=canary"], None))
    resolver = VariantResolver(lambda u: parsed(body), clock=clock)
    resolver.map_for("orders")
    assert resolver.on_miss("orders", ("[::1]", 80)) == ("canary", "")
    assert resolver.on_miss("orders", ("0:0:0:0:0:0:0:1", 80)) == ("canary", "")
    assert canonical_ip("[0000:0000:0000:0000:0000:0000:0000:0001]") == "::1"
    assert canonical_ip("not-an-ip") == "not-an-ip"


class Sequenced:
    """Answers successive fetches from a list of health bodies (the last one repeats)."""

    def __init__(self, *bodies: UpstreamHealth | Exception) -> None:
        self.bodies = list(bodies)
        self.calls = 0

    def __call__(self, upstream: str) -> UpstreamHealth:
        body = self.bodies[min(self.calls, len(self.bodies) - 1)]
        self.calls += 1
        if isinstance(body, Exception):
            raise body
        return body


def two_targets(canary_port: int | None) -> UpstreamHealth:
    targets = [
        TargetHealth(
            "10.0.0.1:80",
            "t1",
            100,
            "HEALTHY",
            (Address("10.0.0.1", 80, 100, "HEALTHY"),),
            tags=("variant=stable",),
        )
    ]
    if canary_port is not None:
        targets.append(
            TargetHealth(
                f"10.0.0.2:{canary_port}",
                "t2",
                100,
                "HEALTHY",
                (Address("10.0.0.2", canary_port, 100, "HEALTHY"),),
                tags=("variant=canary",),
            )
        )
    return UpstreamHealth("n-1", tuple(targets))


def test_refresh_on_miss_is_rate_limited(clock) -> None:  # type: ignore[no-untyped-def]
    fetch = Sequenced(two_targets(None), two_targets(81))
    resolver = VariantResolver(fetch, clock=clock, ttl=30, miss_interval=5)
    assert resolver.map_for("orders") == {("10.0.0.1", 80): "stable"}
    assert fetch.calls == 1
    # a canary target appears in Kong; the first miss within 5 s of the fetch waits
    assert resolver.on_miss("orders", ("10.0.0.2", 81)) == (None, UNKNOWN_ADDRESS)
    assert fetch.calls == 1
    clock.now += 5
    assert resolver.on_miss("orders", ("10.0.0.2", 81)) == ("canary", "")
    assert fetch.calls == 2
    # strangers don't cause a fetch each: at most one per interval
    for port in range(1000, 1100):
        assert resolver.on_miss("orders", ("10.9.9.9", port)) == (None, UNKNOWN_ADDRESS)
    assert fetch.calls == 2
    clock.now += 5
    resolver.on_miss("orders", ("10.9.9.9", 1))
    assert fetch.calls == 3


def test_ttl_refreshes_the_map_on_the_next_batch(clock) -> None:  # type: ignore[no-untyped-def]
    fetch = Sequenced(two_targets(81), two_targets(None))
    resolver = VariantResolver(fetch, clock=clock, ttl=30, miss_interval=5)
    assert ("10.0.0.2", 81) in resolver.map_for("orders")  # type: ignore[operator]
    clock.now += 29.9
    resolver.map_for("orders")
    assert fetch.calls == 1
    clock.now += 0.1
    assert ("10.0.0.2", 81) not in resolver.map_for("orders")  # type: ignore[operator]
    assert fetch.calls == 2


def test_unknown_upstream_is_none_and_remembered(clock, fake_kong) -> None:  # type: ignore[no-untyped-def]
    kong = fake_kong({"orders": health_body("3.4.2")})
    resolver = VariantResolver(kong.admin(Flavour.KONG_3).health, clock=clock, ttl=30)
    assert resolver.map_for("payments") is None
    assert resolver.map_for("payments") is None
    assert kong.calls == ["GET /upstreams/payments/health"]
    assert resolver.map_for("orders") is not None


def test_kong_down_keeps_the_stale_map_or_answers_503(clock, fake_kong) -> None:  # type: ignore[no-untyped-def]
    kong = fake_kong({"orders": health_body("3.9.3")})
    resolver = VariantResolver(kong.admin(Flavour.KONG_3).health, clock=clock, ttl=30)
    before = resolver.map_for("orders")
    kong.down = True
    clock.now += 60
    assert resolver.map_for("orders") == before  # stale but useful
    calls = len(kong.calls)
    assert resolver.map_for("orders") == before  # and not retried on every batch
    assert len(kong.calls) == calls
    with pytest.raises(ApiError) as caught:
        resolver.map_for("never-seen")
    assert caught.value.status == 503  # Kong's queue retries the batch later


def test_resolve_takes_exact_managed_names_only(clock, fake_kong) -> None:  # type: ignore[no-untyped-def]
    tagged = health_body("3.9.3")
    untagged = health(health_item("10.0.0.1:80", None, [("10.0.0.1", 80)]))
    kong = fake_kong({"orders": tagged, "legacy": untagged})
    admin = kong.admin(Flavour.KONG_3)
    resolver = VariantResolver(admin.health, upstream=admin.upstream, clock=clock)
    orders_id = tagged["data"][0]["upstream"]["id"]
    assert resolver.resolve("orders") == ("orders", "")
    assert resolver.resolve("Orders") == (None, UNKNOWN_UPSTREAM)  # Kong: exact names
    assert resolver.resolve("legacy") == (None, UNMANAGED_UPSTREAM)
    calls = list(kong.calls)
    # Kong's balancer never routes a service host to an upstream by id: no Kong call at all
    assert resolver.resolve(orders_id.upper()) == (None, UNKNOWN_UPSTREAM)
    assert kong.calls == calls


def test_name_of_turns_an_id_in_any_case_into_the_name_with_one_call(clock, fake_kong) -> None:  # type: ignore[no-untyped-def]
    kong = fake_kong({"orders": health_body("3.4.2")})
    admin = kong.admin(Flavour.KONG_3)
    resolver = VariantResolver(admin.health, upstream=admin.upstream, clock=clock)
    orders_id = health_body("3.4.2")["data"][0]["upstream"]["id"]
    assert resolver.name_of(orders_id.upper()) == "orders"
    assert resolver.name_of(orders_id) == "orders"
    assert resolver.name_of("orders") == "orders"
    assert resolver.name_of("payments") is None
    assert resolver.name_of("00000000-0000-4000-8000-000000000000") is None
    assert kong.calls.count(f"GET /upstreams/{orders_id}") == 1


def test_an_upstream_becomes_managed_when_its_targets_get_our_tags(clock, fake_kong) -> None:  # type: ignore[no-untyped-def]
    """Rate-limited like a miss: the split tags targets just before Kong's first batch."""
    body = health(health_item("10.0.0.1:80", None, [("10.0.0.1", 80)]))
    kong = fake_kong({"orders": body})
    admin = kong.admin(Flavour.KONG_3)
    resolver = VariantResolver(admin.health, clock=clock, ttl=30, miss_interval=5)
    assert resolver.resolve("orders") == (None, UNMANAGED_UPSTREAM)
    body["data"][0]["tags"] = ["variant=stable", "managed-by=kong-canary"]
    assert resolver.resolve("orders") == (None, UNMANAGED_UPSTREAM)  # not before 5 s
    assert kong.calls == ["GET /upstreams/orders/health"]
    clock.now += 5
    assert resolver.resolve("orders") == ("orders", "")
    assert len(kong.calls) == 2
