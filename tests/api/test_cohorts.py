"""Cohorts end to end (issue 14): sidecar over HTTP -> Kong-compatible server (2.8, 3.4, 3.9;
Konnect is refused) or a real Kong (``KONG_ADMIN_URL``).

Shadow upstreams follow every split change, rollback/promote/lease expiry leave no cohort
entity behind, refusals leave Kong byte-identical, and the plugin Kong holds, run under
LuaJIT against a fake PDK, routes as the rules say."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sidecar.kong_local.serverless_runtime import Consumer, ServerlessRuntime
from sidecar.leases import sweep
from tests.api.conftest import (
    TOKENS,
    _params,
    skip_if_global_post_function,
    skip_if_other_canaries,
)
from tests.kong_state import every_item

STABLE = "10.0.0.1:80"
CANARY = "10.0.0.3:80"
BASELINE = "10.0.0.2:80"
HEADER = {"header": {"name": "X-Canary", "always": "always", "never": "never"}}
# Every profile but Konnect, where cohorts are refused (tests/api/test_cohorts_refusals.py).
pytestmark = pytest.mark.parametrize(
    "sidecar", [p for p in _params() if p.id != "kong-konnect"], indirect=True
)


def _page(kong: httpx.Client, path: str) -> list[dict[str, Any]]:
    """Every item of a list, every page: a shared Kong may hold more than one page (1000) of
    upstreams, and a check that reads only the first would miss a shadow left on the next."""
    return every_item(kong, path)


def dump(kong: httpx.Client) -> str:
    """Every entity cohorts could touch, as Kong returns them (bytes compared)."""
    upstreams = sorted(_page(kong, "/upstreams"), key=lambda u: u["id"])
    state = {
        "upstreams": upstreams,
        "targets": {
            u["name"]: sorted(_page(kong, f"/upstreams/{u['id']}/targets"), key=lambda t: t["id"])
            for u in upstreams
        },
        "services": sorted(_page(kong, "/services"), key=lambda s: s["id"]),
        "plugins": sorted(_page(kong, "/plugins"), key=lambda p: p["id"]),
    }
    return json.dumps(state, sort_keys=True)


def cohort_entities(kong: httpx.Client, upstream: str) -> list[str]:
    tag = f"kong-canary-cohorts={upstream}"
    found = [f"plugin {p['id']}" for p in _page(kong, "/plugins") if tag in (p.get("tags") or [])]
    found += [u["name"] for u in _page(kong, "/upstreams") if tag in (u.get("tags") or [])]
    return found


@pytest.fixture
def routed(sidecar, upstream) -> Iterator[str]:
    """The upstream behind a Kong service (cohorts need one to attach to)."""
    skip_if_global_post_function(sidecar)
    kong = sidecar.kong_client()
    service = kong.post("/services", json={"name": f"svc-{upstream}", "host": upstream})
    assert service.status_code == 201, service.text
    yield upstream
    for plugin in _page(kong, f"/services/{service.json()['id']}/plugins"):
        kong.delete(f"/plugins/{plugin['id']}")
    kong.delete(f"/services/{service.json()['id']}")
    for suffix in ("--stable", "--canary"):
        kong.delete(f"/upstreams/{upstream}{suffix}")


def shadow_weights(sidecar, upstream: str) -> dict[str, dict[str, int]]:
    kong = sidecar.kong_client()
    out = {}
    for variant in ("stable", "canary"):
        rows = _page(kong, f"/upstreams/{upstream}--{variant}/targets")
        out[variant] = {t["target"]: t["weight"] for t in rows}
    return out


def main_weights_by_variant(sidecar, upstream: str) -> dict[str, dict[str, int]]:
    rows = _page(sidecar.kong_client(), f"/upstreams/{upstream}/targets")
    out: dict[str, dict[str, int]] = {"stable": {}, "canary": {}}
    for t in rows:
        variant = next(
            (tag.split("=", 1)[1] for tag in t.get("tags") or [] if tag.startswith("variant=")),
            "stable",
        )
        if variant in out:
            out[variant][t["target"]] = t["weight"]
    return out


def set_split(client: httpx.Client, upstream: str, split: dict[str, float]) -> None:
    body = {"split": split, "targets": {"canary": [CANARY], "baseline": [BASELINE]}}
    answer = client.put(f"/v1/upstreams/{upstream}/split", json=body)
    assert answer.status_code == 200, answer.text


def test_set_read_and_clear_cohorts(sidecar, routed):
    client = sidecar.client()
    answer = client.put(f"/v1/upstreams/{routed}/cohorts", json={**HEADER, "lease": 600})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["cohorts"]["header"] == HEADER["header"]
    assert body["canary_live"] is False  # no canary weight yet
    assert body["lease"]["epoch"] == int(sidecar.clock.now) + 600
    assert [p["action"] for p in body["kong"]["written_plugins"]] == ["create"]

    view = client.get(f"/v1/upstreams/{routed}/cohorts").json()
    assert view["cohorts"]["header"]["name"] == "X-Canary"
    assert len(view["kong"]["plugins"]) == 1
    assert {s["name"]: s["targets"] for s in view["kong"]["shadow_upstreams"]} == {
        f"{routed}--stable": {STABLE: 100},
        f"{routed}--canary": {},
    }
    split_view = client.get(f"/v1/upstreams/{routed}/split").json()
    assert split_view["cohorts"]["header"]["name"] == "X-Canary"

    again = client.put(f"/v1/upstreams/{routed}/cohorts", json={**HEADER, "lease": 600}).json()
    assert [p["action"] for p in again["kong"]["written_plugins"]] == ["keep"]

    cleared = client.delete(f"/v1/upstreams/{routed}/cohorts")
    assert cleared.status_code == 200, cleared.text
    assert sorted(cleared.json()["removed"]["shadow_upstreams"]) == [
        f"{routed}--canary",
        f"{routed}--stable",
    ]
    assert cohort_entities(sidecar.kong_client(), routed) == []
    assert client.get(f"/v1/upstreams/{routed}/cohorts").json()["cohorts"] is None
    assert client.get(f"/v1/upstreams/{routed}/split").json()["cohorts"] is None


def test_shadow_upstreams_follow_every_split_change(sidecar, routed):
    client = sidecar.client()
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER).status_code == 200
    for split in (
        {"stable": 90, "baseline": 5, "canary": 5},
        {"stable": 50, "baseline": 25, "canary": 25},
        {"stable": 90, "baseline": 10},
        {"stable": 80, "baseline": 10, "canary": 10},
    ):
        set_split(client, routed, split)
        assert shadow_weights(sidecar, routed) == main_weights_by_variant(sidecar, routed)
        live = client.get(f"/v1/upstreams/{routed}/cohorts").json()["canary_live"]
        assert live is (split.get("canary", 0) > 0)


def test_shadows_mirror_the_upstreams_settings(sidecar, routed):
    kong = sidecar.kong_client()
    kong.patch(
        f"/upstreams/{routed}",
        json={"hash_on": "header", "hash_on_header": "X-User", "slots": 1000},
    ).raise_for_status()
    assert sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=HEADER).status_code == 200
    main = kong.get(f"/upstreams/{routed}").json()
    for suffix in ("--stable", "--canary"):
        shadow = kong.get(f"/upstreams/{routed}{suffix}").json()
        for key in ("algorithm", "hash_on", "hash_on_header", "slots", "healthchecks"):
            assert shadow[key] == main[key], key


@pytest.mark.parametrize("ending", ["rollback", "promote", "lease_expiry", "stable_only"])
def test_the_end_of_the_canary_removes_every_cohort_entity(sidecar, routed, ending):
    if ending == "lease_expiry":
        skip_if_other_canaries(sidecar, routed, "the lease sweep")
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    answer = client.put(f"/v1/upstreams/{routed}/cohorts", json={**HEADER, "lease": 300})
    assert answer.status_code == 200, answer.text
    assert answer.json()["canary_live"] is True
    assert cohort_entities(sidecar.kong_client(), routed)
    if ending == "stable_only":  # a split back to stable 100 % has no lease left
        set_split(client, routed, {"stable": 100})
    elif ending == "lease_expiry":
        sidecar.clock.advance(301)
        service = sidecar.app.extensions["kong_canary"].service
        assert sweep(service, sidecar.clock()) == [routed]
    else:
        done = client.post(f"/v1/upstreams/{routed}/{ending}", json={})
        assert done.status_code == 200, done.text
        assert done.json()["warnings"] == [] or not any(
            "cohorts" in w for w in done.json()["warnings"]
        )
    assert cohort_entities(sidecar.kong_client(), routed) == []


def test_a_ramp_step_keeps_the_cohorts(sidecar, routed):
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER).status_code == 200
    set_split(client, routed, {"stable": 80, "baseline": 10, "canary": 10})
    assert len(cohort_entities(sidecar.kong_client(), routed)) == 3


def test_a_lease_renewed_by_cohorts_is_the_splits(sidecar, routed):
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    client.put(f"/v1/upstreams/{routed}/cohorts", json={**HEADER, "lease": 7200})
    lease = client.get(f"/v1/upstreams/{routed}/split").json()["lease"]
    assert lease["epoch"] == int(sidecar.clock.now) + 7200


def test_dry_run_changes_nothing(sidecar, routed):
    kong = sidecar.kong_client()
    before = dump(kong)
    answer = sidecar.client().put(
        f"/v1/upstreams/{routed}/cohorts", json={**HEADER, "dry_run": True}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["dry_run"] is True
    assert dump(kong) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "never_canary"),
        ({"never_canary": {"consumers": "alice"}}, "never_canary.consumers"),
        ({"header": {"name": "X Canary"}}, "header.name"),
        ({**HEADER, "surprise": 1}, "surprise"),
        ({**HEADER, "lease": 0}, "lease"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(sidecar, routed, body, field):
    kong = sidecar.kong_client()
    before = dump(kong)
    answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert dump(kong) == before


def test_a_foreign_post_function_is_refused_and_kong_is_unchanged(sidecar, routed):
    kong = sidecar.kong_client()
    service = _page(kong, "/services")
    sid = next(s["id"] for s in service if s["host"] == routed)
    theirs = kong.post(
        f"/services/{sid}/plugins",
        json={"name": "post-function", "config": {"access": ["kong.log.info('mine')"]}},
    )
    assert theirs.status_code == 201, theirs.text
    before = dump(kong)
    answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=HEADER)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "post_function_in_use"
    assert "pre-function" in answer.json()["error"]["message"]
    assert (
        "a post-function on a route would switch cohorts off" in answer.json()["error"]["message"]
    )
    assert dump(kong) == before


MINE = {"name": "post-function", "config": {"access": ["kong.log.info('mine')"]}}


@pytest.fixture
def route_of(sidecar, routed) -> Iterator[dict[str, Any]]:
    """A route of the upstream's service; its plugins and itself go afterwards."""
    kong = sidecar.kong_client()
    sid = next(s["id"] for s in _page(kong, "/services") if s["host"] == routed)
    route = kong.post(f"/services/{sid}/routes", json={"paths": [f"/{routed}"]})
    assert route.status_code == 201, route.text
    yield route.json()
    for plugin in _page(kong, "/plugins"):
        if (plugin.get("route") or {}).get("id") == route.json()["id"]:
            kong.delete(f"/plugins/{plugin['id']}")
    kong.delete(f"/routes/{route.json()['id']}")


def assert_refused_naming(sidecar, routed, *names: str) -> None:
    kong = sidecar.kong_client()
    before = dump(kong)
    answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=HEADER)
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "post_function_in_use"
    for name in names:
        assert name in error["message"]
    assert dump(kong) == before


@pytest.mark.parametrize("with_service", [False, True], ids=["route", "route+service"])
def test_a_post_function_on_a_route_of_the_service_is_refused(
    sidecar, routed, route_of, with_service
):
    """Kong runs the route's post-function instead of the service's for that route
    (``plugins_iterator.lua``): cohorts would silently not apply there."""
    kong = sidecar.kong_client()
    body = {**MINE, "route": {"id": route_of["id"]}}
    if with_service:
        body["service"] = route_of["service"]
    theirs = kong.post("/plugins", json=body)
    assert theirs.status_code == 201, theirs.text
    assert_refused_naming(sidecar, routed, theirs.json()["id"], route_of["id"])


def test_a_global_post_function_is_refused(sidecar, routed):
    """Ours on the service would outrank a global post-function: its code would stop
    running for this upstream's traffic."""
    kong = sidecar.kong_client()
    theirs = kong.post("/plugins", json=MINE)
    assert theirs.status_code == 201, theirs.text
    try:
        assert_refused_naming(sidecar, routed, theirs.json()["id"], "global")
    finally:
        kong.delete(f"/plugins/{theirs.json()['id']}")


def test_a_route_post_function_added_later_is_reported_by_get(sidecar, routed, route_of):
    """Kong accepts a route's post-function next to ours; GET names it (not removed: it is
    someone else's)."""
    client, kong = sidecar.client(), sidecar.kong_client()
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER).status_code == 200
    view = client.get(f"/v1/upstreams/{routed}/cohorts").json()
    assert view["kong"]["competing_post_functions"] == []
    theirs = kong.post("/plugins", json={**MINE, "route": {"id": route_of["id"]}})
    assert theirs.status_code == 201, theirs.text
    view = client.get(f"/v1/upstreams/{routed}/cohorts").json()
    [found] = view["kong"]["competing_post_functions"]
    assert (found["id"], found["scope"], found["route"]) == (
        theirs.json()["id"],
        "route",
        route_of["id"],
    )
    assert "cohort rules would not apply" in found["message"]
    assert client.delete(f"/v1/upstreams/{routed}/cohorts").status_code == 200


def test_a_post_function_on_another_services_route_is_no_obstacle(sidecar, routed):
    kong = sidecar.kong_client()
    other = kong.post("/services", json={"name": f"other-{routed}", "host": "elsewhere"})
    assert other.status_code == 201, other.text
    route = kong.post(f"/services/{other.json()['id']}/routes", json={"paths": ["/else"]})
    theirs = kong.post("/plugins", json={**MINE, "route": {"id": route.json()["id"]}})
    assert theirs.status_code == 201, theirs.text
    try:
        answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=HEADER)
        assert answer.status_code == 200, answer.text
    finally:
        kong.delete(f"/plugins/{theirs.json()['id']}")
        kong.delete(f"/routes/{route.json()['id']}")
        kong.delete(f"/services/{other.json()['id']}")


def test_writes_need_a_write_token_for_the_upstream(sidecar, routed):
    viewer = sidecar.client(TOKENS[1].token)
    assert viewer.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER).status_code == 403
    assert viewer.get(f"/v1/upstreams/{routed}/cohorts").status_code == 200
    scoped = sidecar.client(TOKENS[2].token)  # orders* only; the fixture's are orders-…
    other = f"payments-{uuid.uuid4().hex[:6]}"
    assert scoped.put(f"/v1/upstreams/{other}/cohorts", json=HEADER).status_code == 403


# ---- the plugin Kong holds, run under LuaJIT ------------------------------------------


def kong_plugin_handler(sidecar, upstream: str) -> tuple[ServerlessRuntime, Any]:
    """Our post-function as Kong holds it, loaded into LuaJIT with Kong's sandbox and PDK
    modelled (``sidecar.kong_local.serverless_runtime``), the shadows known by name."""
    plugins = [
        p
        for p in _page(sidecar.kong_client(), "/plugins")
        if f"kong-canary-cohorts={upstream}" in (p.get("tags") or [])
    ]
    assert len(plugins) == 1
    runtime = ServerlessRuntime([f"{upstream}--stable", f"{upstream}--canary"])
    return runtime, runtime.load(plugins[0]["config"]["access"][0])


def test_the_plugin_kong_holds_routes_the_header_override(sidecar, routed):
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER).status_code == 200
    runtime, handler = kong_plugin_handler(sidecar, routed)
    assert runtime.request(handler, None, {"X-Canary": "never"}) == f"{routed}--stable"
    assert runtime.request(handler, None, {"x-canary": "always"}) == f"{routed}--canary"
    assert runtime.request(handler, Consumer("someone")) is None  # follows the split


# ---- order of writes and failures (local Kong only: its call log and faults) ------------


def local_only(sidecar) -> None:
    if sidecar.local is None:
        pytest.skip("needs the local Kong's call log and fault injection")


def test_the_plugin_leaves_the_canary_before_the_canary_loses_its_weight(sidecar, routed):
    local_only(sidecar)
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER).json()["canary_live"]
    start = len(sidecar.local.calls)
    set_split(client, routed, {"stable": 90, "baseline": 10})
    calls = [c for c in sidecar.local.calls[start:] if c[0] != "GET"]
    plugin_patch = next(i for i, c in enumerate(calls) if c[0] == "PATCH" and "/plugins/" in c[1])
    canary_write = next(
        i for i, c in enumerate(calls) if c[0] == "PATCH" and c[1].endswith(f"/targets/{CANARY}")
    )
    assert plugin_patch < canary_write, calls
    assert client.get(f"/v1/upstreams/{routed}/cohorts").json()["canary_live"] is False


def test_a_set_split_whose_plugin_cannot_leave_the_canary_is_refused(sidecar, routed):
    local_only(sidecar)
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    client.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER)
    before = sidecar.kong_weights(routed)
    sidecar.local.faults.fail(1, "500", ("PATCH",), path_contains="/plugins/")
    try:
        answer = client.put(
            f"/v1/upstreams/{routed}/split", json={"split": {"stable": 90, "baseline": 10}}
        )
    finally:
        sidecar.local.faults.clear()
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "cohorts_not_updated"
    assert sidecar.kong_weights(routed) == before  # the canary kept its weight


def test_a_rollback_is_never_blocked_by_a_cohort_failure(sidecar, routed):
    local_only(sidecar)
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    client.put(f"/v1/upstreams/{routed}/cohorts", json=HEADER)
    sidecar.local.faults.fail(1, "500", ("DELETE",), path_contains="/plugins/")
    try:
        answer = client.post(f"/v1/upstreams/{routed}/rollback", json={})
    finally:
        sidecar.local.faults.clear()
    assert answer.status_code == 200, answer.text
    assert answer.json()["split"] == {"stable": 100, "baseline": 0, "canary": 0}
    assert any("cohorts" in w for w in answer.json()["warnings"])
    # the observer's second attempt removed them after the failed first one
    assert cohort_entities(sidecar.kong_client(), routed) == []


# ---- consumers and ACL groups ---------------------------------------------------------


@pytest.fixture
def people(sidecar, routed) -> Iterator[dict[str, str]]:
    """Consumers in Kong: alice (username), merchant-7 (custom_id only), qa-bob in ACL group
    qa, vip-carol in ACL group vip. Their ids by name."""
    kong = sidecar.kong_client()
    tag = uuid.uuid4().hex[:6]
    made = {}
    for key, body in {
        "alice": {"username": f"alice-{tag}"},
        "merchant": {"custom_id": f"merchant-{tag}"},
        "bob": {"username": f"qa-bob-{tag}"},
        "carol": {"username": f"vip-carol-{tag}"},
    }.items():
        answer = kong.post("/consumers", json=body)
        assert answer.status_code == 201, answer.text
        made[key] = answer.json()["id"]
    for key, group in (("bob", f"qa-{tag}"), ("carol", f"vip-{tag}")):
        assert kong.post(f"/consumers/{made[key]}/acls", json={"group": group}).status_code == 201
    made["tag"] = tag
    yield made
    for key in ("alice", "merchant", "bob", "carol"):
        kong.delete(f"/consumers/{made[key]}")


def alice_off_qa_on(people: dict[str, str]) -> dict[str, Any]:
    """Alice never sees the canary; the qa group always does."""
    return {
        "never_canary": {"consumers": [f"alice-{people['tag']}"]},
        "always_canary": {"groups": [f"qa-{people['tag']}"]},
    }


def test_consumers_and_groups_resolve_to_ids(sidecar, routed, people):
    tag = people["tag"]
    body = {
        "never_canary": {
            "consumers": [f"alice-{tag}", f"merchant-{tag}"],
            "groups": [f"vip-{tag}"],
        },
        "always_canary": {"consumers": [people["bob"]], "groups": [f"vip-{tag}"]},
    }
    answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=body)
    assert answer.status_code == 200, answer.text
    resolved = answer.json()["resolved"]
    assert sorted(resolved["never_canary"]) == sorted(
        [people["alice"], people["merchant"], people["carol"]]
    )
    assert resolved["always_canary"] == [people["bob"]]  # carol: never wins over always
    view = sidecar.client().get(f"/v1/upstreams/{routed}/cohorts").json()
    assert view["resolved"] == resolved


def test_an_unknown_consumer_is_422_naming_it_and_kong_is_unchanged(sidecar, routed, people):
    kong = sidecar.kong_client()
    before = dump(kong)
    body = {"never_canary": {"consumers": [f"alice-{people['tag']}", "nobody-at-all"]}}
    answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unknown_consumer"
    assert error["field"] == "never_canary.consumers[1]"
    assert "nobody-at-all" in error["message"]
    assert dump(kong) == before


def test_the_plugin_kong_holds_keeps_a_never_canary_consumer_on_stable(sidecar, routed, people):
    client = sidecar.client()
    set_split(client, routed, {"stable": 50, "baseline": 25, "canary": 25})
    body = alice_off_qa_on(people)
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=body).status_code == 200
    runtime, handler = kong_plugin_handler(sidecar, routed)
    assert runtime.request(handler, Consumer(people["alice"])) == f"{routed}--stable"
    assert runtime.request(handler, Consumer(people["bob"])) == f"{routed}--canary"
    assert runtime.request(handler, Consumer(people["carol"])) is None
    # the stable shadow holds stable targets only: alice cannot reach canary or baseline
    assert shadow_weights(sidecar, routed)["stable"] == {
        STABLE: main_weights_by_variant(sidecar, routed)["stable"][STABLE]
    }


def test_the_refresh_picks_up_a_new_group_member(sidecar, routed, people):
    client = sidecar.client()
    group = f"qa-{people['tag']}"
    body = {"always_canary": {"groups": [group]}}
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=body).status_code == 200
    kong = sidecar.kong_client()
    kong.post(f"/consumers/{people['alice']}/acls", json={"group": group}).raise_for_status()
    service = sidecar.app.extensions["kong_canary_cohorts"]
    assert service.refresh() == [routed]
    resolved = client.get(f"/v1/upstreams/{routed}/cohorts").json()["resolved"]
    assert sorted(resolved["always_canary"]) == sorted([people["alice"], people["bob"]])
    assert service.refresh() == []  # nothing new: nothing written


def test_an_orca_payload_with_null_members_is_read_as_absent(sidecar, routed):
    body = {
        "never_canary": None,
        "always_canary": {"consumers": None, "groups": []},
        "header": {"name": "X-Canary"},
        "lease": None,
        "wait": None,
        "dry_run": "true",
    }
    answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["cohorts"]["never_canary"] == {"consumers": [], "groups": []}
    assert answer.json()["dry_run"] is True


def test_wait_covers_the_shadow_upstreams(sidecar, routed):
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    answer = client.put(f"/v1/upstreams/{routed}/cohorts", json={**HEADER, "wait": 5})
    assert answer.status_code == 200, answer.text
    propagation = answer.json()["propagation"]
    assert propagation["confirmed"] is True, propagation


def test_the_local_kongs_proxy_sends_each_cohort_where_the_rules_say(sidecar, routed, people):
    """Through the local Kong's data-plane model (``LocalKong.proxy_upstream``: the service's
    post-function run as Kong runs it), from set to rollback."""
    local_only(sidecar)
    client = sidecar.client()
    set_split(client, routed, {"stable": 90, "baseline": 5, "canary": 5})
    body = {**alice_off_qa_on(people), **HEADER}
    assert client.put(f"/v1/upstreams/{routed}/cohorts", json=body).status_code == 200
    service = f"svc-{routed}"
    proxy = sidecar.local.proxy_upstream
    assert proxy(service, people["alice"]) == f"{routed}--stable"
    assert proxy(service, people["alice"], {"X-Canary": "always"}) == f"{routed}--canary"
    assert proxy(service, people["bob"]) == f"{routed}--canary"
    assert proxy(service, people["carol"]) == routed
    set_split(client, routed, {"stable": 90, "baseline": 10})  # canary 0 %: nobody sent there
    assert proxy(service, people["bob"]) == routed
    assert proxy(service, people["alice"]) == f"{routed}--stable"
    assert client.post(f"/v1/upstreams/{routed}/rollback", json={}).status_code == 200
    assert proxy(service, people["alice"]) == routed


def test_the_set_cohorts_webhook_stages_payload_is_accepted(sidecar, routed, people):
    """The payload of ``kongCanarySetCohorts`` (pipeline-templates, branch templates): every
    member present, unset ones null or {}, flags and seconds as strings."""
    body = {
        "never_canary": {"consumers": [f"alice-{people['tag']}"], "groups": []},
        "always_canary": {},
        "header": None,
        "lease": None,
        "dry_run": "false",
        "wait": "10",
        "reason": "",
        "context": {
            "user": "anonymous",
            "execution_id": "01J0000000000000000000000",
            "pipeline": "deploy",
            "stage": "kongCanarySetCohorts",
            "application": "orders",
        },
    }
    answer = sidecar.client().put(f"/v1/upstreams/{routed}/cohorts", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["resolved"]["never_canary"] == [people["alice"]]
    assert answer.json()["propagation"]["confirmed"] is True
    cleared = sidecar.client().request(
        "DELETE",
        f"/v1/upstreams/{routed}/cohorts",
        json={"dry_run": "false", "reason": "", "context": body["context"]},
    )
    assert cleared.status_code == 200, cleared.text
    assert cohort_entities(sidecar.kong_client(), routed) == []
