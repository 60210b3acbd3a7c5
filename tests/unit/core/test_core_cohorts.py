"""The pure cohort decisions: input rules, resolution, shadow names and shadow plans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.cohorts import (
    CohortError,
    CohortSpec,
    HeaderOverride,
    Members,
    canary_live,
    check_shadow_names,
    consumer_index,
    group_index,
    is_ours,
    mirrored_fields,
    parse_spec,
    plan_shadow,
    resolve,
    served_shares,
    shadow_names,
    shadow_targets,
    spec_from_json,
    tags_for,
)

CONSUMERS = [
    {"id": "c-1", "username": "alice", "custom_id": "merchant-1"},
    {"id": "c-2", "username": "bob", "custom_id": None},
    {"id": "c-3", "username": None, "custom_id": "qa-bot"},
]
ACLS = [
    {"group": "vip", "consumer": {"id": "c-1"}},
    {"group": "vip", "consumer": {"id": "c-2"}},
    {"group": "qa", "consumer": {"id": "c-3"}},
    {"group": "qa", "consumer": {"id": "c-1"}},
]


def test_parse_spec_reads_the_issue_shape() -> None:
    spec = parse_spec(
        {
            "never_canary": {"consumers": ["alice", "alice"], "groups": ["vip"]},
            "always_canary": {"groups": ["qa"]},
            "header": {"name": "X-Canary"},
            "lease": 600,
            "dry_run": True,
        }
    )
    assert spec.never == Members(("alice",), ("vip",))
    assert spec.always == Members((), ("qa",))
    assert spec.header == HeaderOverride("X-Canary", "always", "never")
    assert spec_from_json(spec.as_json()) == spec


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "never_canary"),
        ({"never_canary": []}, "never_canary"),
        ({"never_canary": {"users": []}}, "never_canary.users"),
        ({"never_canary": {"consumers": "alice"}}, "never_canary.consumers"),
        ({"always_canary": {"consumers": ["ok", ""]}}, "always_canary.consumers[1]"),
        ({"header": {"name": "X Canary"}}, "header.name"),
        ({"header": {"name": "X-Canary", "always": "a b"}}, "header.always"),
        ({"header": {"name": "X-Canary", "always": "on", "never": "ON"}}, "header.never"),
        ({"header": "X-Canary"}, "header"),
    ],
)
def test_parse_spec_names_the_field(body: dict, field: str) -> None:
    with pytest.raises(CohortError) as caught:
        parse_spec(body)
    assert caught.value.field == field


def test_consumers_resolve_by_id_username_or_custom_id() -> None:
    spec = CohortSpec(never=Members(("merchant-1", "bob", "c-3")))
    resolved = resolve(spec, consumer_index(CONSUMERS), group_index(ACLS))
    assert resolved.never_ids == {"c-1", "c-2", "c-3"}


def test_an_unknown_consumer_is_named() -> None:
    spec = CohortSpec(always=Members(("bob", "carol")))
    with pytest.raises(CohortError) as caught:
        resolve(spec, consumer_index(CONSUMERS), group_index(ACLS))
    assert caught.value.field == "always_canary.consumers[1]"
    assert "'carol'" in caught.value.message
    lenient = resolve(spec, consumer_index(CONSUMERS), group_index(ACLS), strict=False)
    assert lenient.always_ids == {"c-2"}


def test_groups_resolve_through_acls_and_never_wins() -> None:
    spec = CohortSpec(never=Members(groups=("vip",)), always=Members(groups=("qa", "gone")))
    resolved = resolve(spec, consumer_index(CONSUMERS), group_index(ACLS))
    assert resolved.never_ids == {"c-1", "c-2"}
    assert resolved.always_ids == {"c-3"}  # c-1 is in both: never wins


@given(
    st.lists(st.sampled_from(["alice", "bob", "qa-bot", "c-1", "merchant-1"]), max_size=5),
    st.lists(st.sampled_from(["alice", "bob", "qa-bot", "c-2"]), max_size=5),
    st.lists(st.sampled_from(["vip", "qa", "none"]), max_size=3),
    st.lists(st.sampled_from(["vip", "qa", "none"]), max_size=3),
)
def test_resolution_never_puts_an_id_in_both_lists(never, always, never_groups, always_groups):
    spec = CohortSpec(
        never=Members(tuple(never), tuple(never_groups)),
        always=Members(tuple(always), tuple(always_groups)),
    )
    resolved = resolve(spec, consumer_index(CONSUMERS), group_index(ACLS))
    assert not resolved.never_ids & resolved.always_ids
    known = {c["id"] for c in CONSUMERS}
    assert resolved.never_ids | resolved.always_ids <= known


def test_shadow_names_follow_the_upstream() -> None:
    assert shadow_names("orders") == ("orders--stable", "orders--canary")
    check_shadow_names("orders.svc.cluster.local")


@pytest.mark.parametrize(
    "upstream",
    ["a" * 56, "orders.", "x" * 250, "orders." + "b" * 60],
)
def test_shadow_names_that_would_be_bad_hostnames_are_refused(upstream: str) -> None:
    with pytest.raises(CohortError) as caught:
        check_shadow_names(upstream)
    assert caught.value.field == "upstream"


def test_shadow_targets_split_by_variant() -> None:
    rows = [("a:80", 90, "stable"), ("b:80", 5, "baseline"), ("c:80", 5, "canary"), ("d:1", 0, "x")]
    assert shadow_targets(rows) == {"stable": {"a:80": 90}, "canary": {"c:80": 5}}


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 100), max_size=6),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 100), max_size=6),
)
def test_plan_shadow_reaches_the_wanted_targets(current, wanted):
    state = dict(current)
    seen_deletes = False
    for write in plan_shadow(current, wanted):
        if write.action == "delete":
            seen_deletes = True
            del state[write.target]
        else:
            assert not seen_deletes  # deletions come last
            assert (write.target in state) == (write.action == "update")
            state[write.target] = write.weight
    assert state == wanted
    assert plan_shadow(wanted, wanted) == []


def test_mirrored_fields_keep_only_settings() -> None:
    upstream = {
        "id": "u-1",
        "name": "orders",
        "tags": ["x"],
        "algorithm": "consistent-hashing",
        "hash_on": "header",
        "hash_on_header": "X-User",
        "hash_on_query_arg": None,
        "healthchecks": {"active": {"type": "http"}},
        "created_at": 1,
    }
    assert mirrored_fields(upstream) == {
        "algorithm": "consistent-hashing",
        "hash_on": "header",
        "hash_on_header": "X-User",
        "healthchecks": {"active": {"type": "http"}},
    }


def test_canary_live_and_served_shares() -> None:
    assert not canary_live(0)
    assert canary_live(1)
    assert served_shares({}) is None
    assert served_shares({"stable": 975, "canary": 25}) == {"stable": 97.5, "canary": 2.5}


def test_tags_say_whose_entity_it_is() -> None:
    tags = tags_for("orders")
    assert is_ours(tags, "orders")
    assert is_ours(tags)
    assert not is_ours(tags, "payments")
    assert not is_ours(["kong-canary-cohorts=orders"], "orders")  # not managed by us


# ---- which post-functions meet ours (Kong's plugin precedence) ----------------------------

ROUTES = [{"id": "r1", "service": {"id": "s1"}}, {"id": "r9", "service": {"id": "s9"}}]


def _post_function(pid: str, service: str | None = None, route: str | None = None, tags=None):
    return {
        "id": pid,
        "name": "post-function",
        "service": {"id": service} if service else None,
        "route": {"id": route} if route else None,
        "tags": tags,
    }


def test_every_scope_that_reaches_our_services_clashes_and_no_other() -> None:
    from sidecar.core.cohorts import post_function_clashes, tags_for

    plugins = [
        _post_function("g"),
        _post_function("s", service="s1"),
        _post_function("r", route="r1"),
        _post_function("rs", service="s1", route="r1"),
        _post_function("other-service", service="s9"),
        _post_function("other-route", route="r9"),
        _post_function("ours", service="s1", tags=tags_for("orders")),
        {**_post_function("pre", service="s1"), "name": "pre-function"},
    ]
    clashes = post_function_clashes(plugins, ROUTES, ["s1"], "orders")
    assert {(c.plugin_id, c.scope) for c in clashes} == {
        ("g", "global"),
        ("s", "service"),
        ("r", "route"),
        ("rs", "route+service"),
    }
    assert "route r1" in next(c for c in clashes if c.plugin_id == "r").describe()


@given(st.lists(st.sampled_from([None, "s1", "s9"]), max_size=6))
def test_a_clash_is_found_iff_the_plugin_can_run_on_our_service(services) -> None:
    """Property: a route-less post-function clashes exactly when its service is ours or
    unset (the global one)."""
    from sidecar.core.cohorts import post_function_clashes

    plugins = [_post_function(f"p{i}", service=s) for i, s in enumerate(services)]
    found = {c.plugin_id for c in post_function_clashes(plugins, ROUTES, ["s1"], "orders")}
    assert found == {f"p{i}" for i, s in enumerate(services) if s in (None, "s1")}
