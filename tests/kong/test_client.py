"""KongAdmin over a scripted Admin API: which verb and path each flavour gets, pagination,
retries, read-only refusal, flavour detection."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from sidecar.kong import errors
from sidecar.kong.client import KongAdmin
from sidecar.kong.models import Flavour
from sidecar.settings import KongSettings
from tests.kong.fakes import (
    KONNECT,
    KONNECT_BASE,
    FakeKong,
    Sleeps,
    info_body,
    make_admin,
    reply,
    target_body,
    upstream_body,
)

T1 = "/upstreams/orders/targets/10.0.0.1:80"


# -- flavour detection (GET /, kong/api/routes/kong.lua) --------------------------------------


@pytest.mark.parametrize(
    ("version", "flavour", "edition"),
    [
        ("2.2.0", Flavour.KONG_2, "community"),
        ("2.8.5", Flavour.KONG_2, "community"),
        ("2.8.1.0-enterprise-edition", Flavour.KONG_2, "enterprise"),
        ("3.0.0", Flavour.KONG_3, "community"),
        ("3.4.2", Flavour.KONG_3, "community"),
        ("3.4.3.29", Flavour.KONG_3, "enterprise"),
        ("3.9.3", Flavour.KONG_3, "community"),
        ("3.10.0.0", Flavour.KONG_3, "enterprise"),
        ("4.0.0", Flavour.KONG_3, "community"),
    ],
)
def test_flavour_from_version(version, flavour, edition) -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body(version)))
    admin = make_admin(fake)
    assert admin.flavour is flavour
    assert admin.info().edition == edition
    assert admin.info().version == version


def test_edition_field_wins_when_present() -> None:
    body = {**info_body("3.9.3"), "edition": "enterprise"}
    admin = make_admin(FakeKong().on("GET", "/", reply(200, body)))
    assert admin.info().edition == "enterprise"


def test_kong_before_2_2_is_refused() -> None:
    admin = make_admin(FakeKong().on("GET", "/", reply(200, info_body("2.1.4"))))
    with pytest.raises(errors.KongError, match="not supported"):
        admin.info()


def test_unreadable_version_is_protocol_error() -> None:
    admin = make_admin(FakeKong().on("GET", "/", reply(200, info_body("banana"))))
    with pytest.raises(errors.KongProtocolError):
        admin.info()


def test_explicit_flavour_overrides_an_unreadable_version() -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body("custom-build", database="off")))
    info = make_admin(fake, flavour=Flavour.KONG_3).info()
    assert info.flavour is Flavour.KONG_3 and not info.writable


def test_info_is_fetched_once() -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body("3.4.2")))
    admin = make_admin(fake)
    admin.info(), admin.info()
    assert admin.flavour is Flavour.KONG_3
    assert fake.calls() == [("GET", "/")]


def test_explicit_flavour_needs_no_detection_for_reads() -> None:
    fake = FakeKong().on("GET", T1, reply(200, target_body("10.0.0.1:80")))
    admin = make_admin(fake, flavour=Flavour.KONG_3)
    assert admin.flavour is Flavour.KONG_3
    assert admin.target("orders", "10.0.0.1:80") is not None
    assert fake.calls() == [("GET", T1)]


def test_node_info_is_read_from_the_admin_root_not_the_workspace() -> None:
    """Kong EE mounts every route under /{workspace} except "/" (prepend_workspace_prefix in
    EE's kong/enterprise_edition/init.lua skips it), so GET /SRE/ would 404."""
    fake = FakeKong().on("GET", "/", reply(200, info_body()))
    fake.on("GET", "/SRE/upstreams/orders", reply(200, upstream_body()))
    admin = make_admin(fake, settings=KongSettings(admin_url="http://kong:8001", workspace="SRE"))
    assert admin.info().flavour is Flavour.KONG_3
    assert admin.upstream("orders").name == "orders"
    assert fake.calls() == [("GET", "/"), ("GET", "/SRE/upstreams/orders")]


def test_konnect_info_is_synthesised_without_get_root() -> None:
    fake = FakeKong()
    admin = make_admin(fake, settings=KONNECT)
    info = admin.info()
    assert info.flavour is Flavour.KONNECT and info.writable
    assert fake.requests == []


@pytest.mark.parametrize(
    ("database", "role", "writable"),
    [
        ("postgres", "traditional", True),
        ("postgres", "control_plane", True),
        ("off", "traditional", False),  # DB-less
        ("off", "data_plane", False),  # hybrid DP
    ],
)
def test_writable(database, role, writable) -> None:
    body = info_body("3.4.2", database=database, role=role)
    admin = make_admin(FakeKong().on("GET", "/", reply(200, body)))
    assert admin.info().writable is writable


# -- write verbs and paths per flavour (kong/db/dao/targets.lua, routes/upstreams.lua) -------


@pytest.mark.parametrize("version", ["2.8.5", "3.4.2"])
def test_update_weight_is_patch_by_normalised_host_port(version) -> None:
    fake = (
        FakeKong()
        .on("GET", "/", reply(200, info_body(version)))
        .on("PATCH", T1, reply(200, target_body("10.0.0.1:80", weight=5)))
    )
    got = make_admin(fake).update_target("orders", "010.0.0.1:80", weight=5)
    assert got.weight == 5 and got.target == "10.0.0.1:80"
    assert fake.calls() == [("GET", "/"), ("PATCH", T1)]
    assert fake.body() == {"weight": 5}


def test_update_tags_only_sends_tags() -> None:
    fake = (
        FakeKong()
        .on("GET", "/", reply(200, info_body()))
        .on("PATCH", T1, reply(200, target_body("10.0.0.1:80", tags=["variant=canary"])))
    )
    got = make_admin(fake).update_target("orders", "10.0.0.1:80", tags=["variant=canary"])
    assert fake.body() == {"tags": ["variant=canary"]}
    assert got.tags == ("variant=canary",)


def test_ipv6_target_is_escaped_in_the_path() -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body()))
    fake.on("PATCH", "/upstreams/orders/targets/[0000:0000:0000:0000:0000:0000:0000:0001]:80",
            reply(200, target_body("[0000:0000:0000:0000:0000:0000:0000:0001]:80")))  # fmt: skip
    make_admin(fake).update_target("orders", "[::1]:80", weight=1)
    raw_path = fake.requests[-1].url.raw_path.decode()
    assert raw_path == "/upstreams/orders/targets/%5B0000:0000:0000:0000:0000:0000:0000:0001%5D:80"


def test_update_missing_target_is_not_found() -> None:
    fake = (
        FakeKong()
        .on("GET", "/", reply(200, info_body()))
        .on("PATCH", T1, reply(404, {"message": "Not found"}))
    )
    with pytest.raises(errors.KongNotFound):
        make_admin(fake).update_target("orders", "10.0.0.1:80", weight=5)


def test_create_on_3x_posts_and_maps_409() -> None:
    conflict = {"code": 5, "name": "unique constraint violation", "message": "UNIQUE violation",
                "fields": {"target": "10.0.0.1:80"}}  # fmt: skip
    fake = FakeKong().on("GET", "/", reply(200, info_body("3.9.3")))
    fake.on("POST", "/upstreams/orders/targets",
            reply(201, target_body("10.0.0.1:80", weight=7, tags=["variant=canary"])),
            reply(409, conflict))  # fmt: skip
    admin = make_admin(fake)
    made = admin.create_target("orders", "10.0.0.1:80", 7, ["variant=canary"])
    assert made.tags == ("variant=canary",)
    assert fake.body() == {"target": "10.0.0.1:80", "weight": 7, "tags": ["variant=canary"]}
    with pytest.raises(errors.KongConflict):
        admin.create_target("orders", "10.0.0.1:80", 7)


def test_create_on_2x_refuses_to_post_over_an_existing_target() -> None:
    """2.x would answer 200 + Deprecation: true and silently update it (recorded 2.8.5)."""
    fake = FakeKong().on("GET", "/", reply(200, info_body("2.8.5")))
    fake.on("GET", T1, reply(200, target_body("10.0.0.1:80")))
    with pytest.raises(errors.KongConflict):
        make_admin(fake).create_target("orders", "10.0.0.1:80", 50)
    assert ("POST", "/upstreams/orders/targets") not in fake.calls()


def test_create_on_2x_posts_when_absent() -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body("2.8.5")))
    fake.on("GET", "/upstreams/orders/targets/10.0.0.9:8000", reply(404, {"message": "Not found"}))
    fake.on("GET", "/upstreams/orders", reply(200, upstream_body()))
    fake.on("POST", "/upstreams/orders/targets", reply(201, target_body("10.0.0.9:8000")))
    assert make_admin(fake).create_target("orders", "10.0.0.9", 100).target == "10.0.0.9:8000"
    assert fake.body() == {"target": "10.0.0.9:8000", "weight": 100}


def test_delete_kong() -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body()))
    fake.on("DELETE", T1, reply(204), reply(404, {"message": "Not found"}))
    admin = make_admin(fake)
    assert admin.delete_target("orders", "10.0.0.1:80") is None
    with pytest.raises(errors.KongNotFound):
        admin.delete_target("orders", "10.0.0.1:80")


def test_target_lookup_tells_missing_target_from_missing_upstream() -> None:
    fake = FakeKong().on("GET", T1, reply(404, {"message": "Not found"}))
    fake.on("GET", "/upstreams/orders", reply(200, upstream_body()))
    assert make_admin(fake, flavour=Flavour.KONG_3).target("orders", "10.0.0.1:80") is None
    fake.on("GET", "/upstreams/orders", reply(404, {"message": "Not found"}))
    with pytest.raises(errors.KongNotFound):
        make_admin(fake, flavour=Flavour.KONG_3).target("orders", "10.0.0.1:80")


def test_update_upstream_is_a_patch_on_kong() -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body()))
    fake.on("PATCH", "/upstreams/orders", reply(200, upstream_body(hash_on="consumer")))
    got = make_admin(fake).update_upstream("orders", hash_on="consumer")
    assert got.hash_on == "consumer" and fake.body() == {"hash_on": "consumer"}


# -- Konnect ------------------------------------------------------------------------------------

UID = "1b0b7c4c-9d0e-4c71-8a4f-4f4bd6c4d7a1"
KUP = f"{KONNECT_BASE}/upstreams/{UID}"


def _konnect(*targets: dict) -> FakeKong:
    fake = FakeKong()
    fake.on("GET", f"{KONNECT_BASE}/upstreams/orders", reply(200, upstream_body(ident=UID)))
    fake.on("GET", f"{KUP}/targets", reply(200, {"data": list(targets), "offset": None}))
    return fake


def test_konnect_update_is_a_full_put_by_target_id() -> None:
    current = target_body("10.0.0.1:80", weight=100, ident="tid-1", tags=["variant=stable"])
    fake = _konnect(current)
    fake.on("PUT", f"{KUP}/targets/tid-1", reply(200, {**current, "weight": 5}))
    got = make_admin(fake, settings=KONNECT).update_target("orders", "10.0.0.1:80", weight=5)
    assert got.weight == 5
    assert fake.body() == {"target": "10.0.0.1:80", "weight": 5, "tags": ["variant=stable"]}
    assert "PATCH" not in {m for m, _ in fake.calls()}
    assert fake.requests[-1].headers["authorization"] == "Bearer kpat_test"


def test_konnect_resolves_upstream_name_once() -> None:
    current = target_body("10.0.0.1:80", ident="tid-1")
    fake = _konnect(current)
    fake.on("PUT", f"{KUP}/targets/tid-1", reply(200, current))
    admin = make_admin(fake, settings=KONNECT)
    admin.update_target("orders", "10.0.0.1:80", weight=5)
    admin.update_target("orders", "10.0.0.1:80", weight=6)
    assert fake.calls("GET").count(("GET", f"{KONNECT_BASE}/upstreams/orders")) == 1


def test_konnect_falls_back_to_listing_when_name_lookup_404s() -> None:
    fake = FakeKong()
    fake.on("GET", f"{KONNECT_BASE}/upstreams/orders", reply(404, {"status": 404,
            "title": "Not Found", "detail": "Not found"}, **{"content-type":
            "application/problem+json"}))  # fmt: skip
    fake.on("GET", f"{KONNECT_BASE}/upstreams",
            reply(200, {"data": [upstream_body("other", ident="x"),
                                 upstream_body(ident=UID)]}))  # fmt: skip
    fake.on("GET", f"{KUP}/targets", reply(200, {"data": []}))
    assert make_admin(fake, settings=KONNECT).targets("orders") == []
    assert fake.calls()[-1] == ("GET", f"{KUP}/targets")


def test_konnect_create_and_delete_by_id() -> None:
    made = target_body("10.0.0.3:80", weight=0, ident="tid-3")
    fake = _konnect(made)
    fake.on("POST", f"{KUP}/targets", reply(201, made))
    fake.on("DELETE", f"{KUP}/targets/tid-3", reply(204))
    admin = make_admin(fake, settings=KONNECT)
    assert admin.create_target("orders", "10.0.0.3:80", 0).id == "tid-3"
    admin.delete_target("orders", "10.0.0.3:80")
    assert fake.calls()[-1] == ("DELETE", f"{KUP}/targets/tid-3")


def test_konnect_delete_missing_is_not_found_and_sends_no_delete() -> None:
    fake = _konnect(target_body("10.0.0.1:80", ident="tid-1"))
    with pytest.raises(errors.KongNotFound):
        make_admin(fake, settings=KONNECT).delete_target("orders", "10.0.0.7:80")
    assert fake.calls("DELETE") == []


def test_konnect_update_upstream_merges_into_a_put() -> None:
    fake = FakeKong().on("GET", KUP, reply(200, upstream_body(ident=UID, updated_at=1)))
    fake.on("PUT", KUP, reply(200, upstream_body(ident=UID, hash_on="ip")))
    got = make_admin(fake, settings=KONNECT).update_upstream(UID, hash_on="ip")
    sent = fake.body()
    assert got.hash_on == "ip" and sent["hash_on"] == "ip" and sent["name"] == "orders"
    assert "created_at" not in sent and "updated_at" not in sent


def test_konnect_ping_lists_one_upstream() -> None:
    fake = FakeKong().on("GET", f"{KONNECT_BASE}/upstreams", reply(200, {"data": []}))
    assert make_admin(fake, settings=KONNECT).ping().flavour is Flavour.KONNECT
    assert parse_qs(fake.requests[0].url.query.decode()) == {"size": ["1"]}


# -- read-only nodes ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["traditional", "data_plane"])
def test_writes_to_a_read_only_node_are_refused_before_sending(role) -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body(database="off", role=role)))
    admin = make_admin(fake)
    attempts = [
        lambda: admin.update_target("orders", "10.0.0.1:80", weight=1),
        lambda: admin.create_target("orders", "10.0.0.1:80", 1),
        lambda: admin.delete_target("orders", "10.0.0.1:80"),
    ]
    for attempt in attempts:
        with pytest.raises(errors.KongReadOnly, match="control plane or Konnect"):
            attempt()
    assert fake.calls() == [("GET", "/")]


def test_405_code_12_from_kong_is_read_only() -> None:
    body = {"code": 12, "name": "operation unsupported",
            "message": "cannot update 'targets' entities when not using a database"}  # fmt: skip
    fake = FakeKong().on("GET", "/", reply(200, info_body()))
    fake.on("PATCH", T1, reply(405, body))
    with pytest.raises(errors.KongReadOnly) as caught:
        make_admin(fake).update_target("orders", "10.0.0.1:80", weight=1)
    assert caught.value.message.endswith("writes must go to the control plane or Konnect")


# -- client-side validation ------------------------------------------------------------------


@pytest.mark.parametrize("weight", [-1, 65536, True, 1.5, "5"])
def test_bad_weights_never_reach_kong(weight) -> None:
    fake = FakeKong().on("GET", "/", reply(200, info_body()))
    with pytest.raises(errors.KongValidationError) as caught:
        make_admin(fake).update_target("orders", "10.0.0.1:80", weight=weight)
    assert "weight" in caught.value.fields
    assert fake.calls("PATCH") == []


def test_bad_target_never_reaches_kong() -> None:
    fake = FakeKong()
    with pytest.raises(errors.KongValidationError) as caught:
        make_admin(fake, flavour=Flavour.KONG_3).target("orders", "not a host!:80")
    assert "target" in caught.value.fields and fake.requests == []


# -- pagination (kong/db/dao/targets.lua page_for_upstream) -----------------------------------


def _targets_page(start: int, count: int, offset: str | None) -> dict:
    data = [target_body(f"10.0.{i // 250}.{i % 250}:80", ident=f"t{i}")
            for i in range(start, start + count)]  # fmt: skip
    page: dict = {"data": data, "next": None}
    if offset is not None:
        page["offset"] = offset
        page["next"] = f"/upstreams/orders/targets?offset={offset}"  # drops size, as Kong does
    return page


def test_nested_targets_follow_offset_with_our_own_size() -> None:
    fake = FakeKong().on(
        "GET",
        "/upstreams/orders/targets",
        reply(200, _targets_page(0, 1000, "1000")),
        reply(200, _targets_page(1000, 5, None)),
    )
    got = make_admin(fake, flavour=Flavour.KONG_3).targets("orders")
    assert len(got) == 1005 and len({t.id for t in got}) == 1005
    queries = [parse_qs(r.url.query.decode()) for r in fake.requests]
    assert queries == [{"size": ["1000"]}, {"size": ["1000"], "offset": ["1000"]}]


def test_top_level_upstreams_use_opaque_offsets() -> None:
    opaque = "WyJmMWQ1YzU3Yi0yMGQ0LTQ0ZDItOWE4Ny0zNzQ5NmE3NTZhMDUiXQ"
    fake = FakeKong().on(
        "GET",
        "/upstreams",
        reply(200, {"data": [upstream_body("a", "1")], "offset": opaque,
                    "next": f"/upstreams?offset={opaque}&size=1000"}),
        reply(200, {"data": [upstream_body("b", "2")], "next": None}),
    )  # fmt: skip
    assert [u.name for u in make_admin(fake).upstreams()] == ["a", "b"]
    assert parse_qs(fake.requests[1].url.query.decode())["offset"] == [opaque]


def test_repeated_offset_is_a_loop_not_an_endless_crawl() -> None:
    # e.g. the recorded size=0 answer: {"data": [], "offset": "0", "next": "...?offset=0"}
    fake = FakeKong().on("GET", "/upstreams/orders/targets",
                         reply(200, {"data": [], "offset": "0"}))  # fmt: skip
    with pytest.raises(errors.KongProtocolError, match="offset '0' came back twice"):
        make_admin(fake, flavour=Flavour.KONG_3).targets("orders")
    assert len(fake.requests) == 2


def test_health_follows_pages_and_parses_recorded_body(fixtures_dir) -> None:
    recorded = json.loads((fixtures_dir / "kong" / "kong-3.4.2-upstream-health.json").read_text())
    first = {**recorded, "data": recorded["data"][:1], "offset": "1"}
    rest = {**recorded, "data": recorded["data"][1:]}
    fake = FakeKong().on("GET", "/upstreams/orders/health", reply(200, first), reply(200, rest))
    health = make_admin(fake, flavour=Flavour.KONG_3).health("orders")
    assert health.node_id == recorded["node_id"]
    by_target = {t.target: t for t in health.targets}
    assert set(by_target) == {"127.0.0.1:9111", "127.0.0.1:9112", "127.0.0.1:9113"}
    stable = by_target["127.0.0.1:9111"]
    assert (stable.weight, stable.health, stable.total_weight) == (8000, "HEALTHCHECKS_OFF", 8000)
    assert stable.addresses[0].ip == "127.0.0.1" and stable.addresses[0].port == 9111
    assert stable.tags == ("variant=stable",)


def test_health_before_a_balancer_exists_has_no_health(fixtures_dir) -> None:
    recorded = json.loads((fixtures_dir / "kong" / "kong-3.9.3-admin-targets.json").read_text())
    body = next(s["response"] for s in recorded["steps"] if s["step"] == "health of upstream")
    body = json.loads(json.dumps(body).replace('"<id1>"', '"u-1"').replace('"<ts>"', "1.0"))
    fake = FakeKong().on("GET", "/upstreams/orders/health", reply(200, body))
    health = make_admin(fake, flavour=Flavour.KONG_3).health("orders")
    assert health.targets and all(t.health is None and t.addresses is None for t in health.targets)


# -- retries -----------------------------------------------------------------------------------


def test_get_is_retried_with_backoff_then_succeeds() -> None:
    sleeps = Sleeps()
    fake = FakeKong().on(
        "GET",
        "/upstreams/orders",
        reply(503, {"message": "busy"}),
        httpx.ReadTimeout("slow"),
        reply(200, upstream_body()),
    )
    admin = make_admin(fake, flavour=Flavour.KONG_3, sleep=sleeps)
    assert admin.upstream("orders").name == "orders"
    assert len(fake.requests) == 3 and sleeps.calls == [0.1, 0.2]


def test_get_retries_are_bounded() -> None:
    sleeps = Sleeps()
    fake = FakeKong().on("GET", "/upstreams/orders", httpx.RemoteProtocolError("reset"))
    admin = make_admin(fake, flavour=Flavour.KONG_3, read_retries=1, sleep=sleeps)
    with pytest.raises(errors.KongUnavailable, match="closed the connection"):
        admin.upstream("orders")
    assert len(fake.requests) == 2 and sleeps.calls == [0.1]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_client_errors_are_not_retried(status) -> None:
    fake = FakeKong().on("GET", "/upstreams/orders", reply(status, {"message": "no"}))
    with pytest.raises(errors.KongError):
        make_admin(fake, flavour=Flavour.KONG_3).upstream("orders")
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "failure", [reply(503, {"message": "busy"}), httpx.ReadTimeout("slow"), httpx.ReadError("x")]
)
def test_writes_are_never_retried(failure) -> None:
    sleeps = Sleeps()
    fake = FakeKong().on("GET", "/", reply(200, info_body()))
    fake.on("PATCH", T1, failure, reply(200, target_body("10.0.0.1:80")))
    with pytest.raises(errors.KongUnavailable):
        make_admin(fake, sleep=sleeps).update_target("orders", "10.0.0.1:80", weight=5)
    assert fake.calls("PATCH") == [("PATCH", T1)] and sleeps.calls == []


def test_ping_is_not_retried() -> None:
    fake = FakeKong().on("GET", "/", reply(503, {"message": "starting"}))
    with pytest.raises(errors.KongUnavailable):
        make_admin(fake).ping()
    assert len(fake.requests) == 1


def test_read_retries_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        KongAdmin(httpx.Client(), read_retries=-1)
