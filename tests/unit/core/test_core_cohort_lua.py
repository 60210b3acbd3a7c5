"""The generated cohort Lua, run under LuaJIT in a model of Kong's sandbox and PDK
(``sidecar/kong_local/serverless_runtime.py`` cites Kong's files), checked against the rules
of issue 14 with random consumers, id sets and headers."""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.cohort_lua import (
    MARKER,
    CohortRouting,
    HeaderOverride,
    is_ours,
    lua_string,
    read_spec,
    render_access_lua,
)
from sidecar.kong_local.serverless import lua_syntax_error
from sidecar.kong_local.serverless_runtime import Consumer, ServerlessRuntime

SANE = settings(max_examples=200, deadline=None)
STABLE, CANARY = "orders--stable", "orders--canary"
TOKEN = string.ascii_letters + string.digits + "-"


@functools.cache
def runtime() -> ServerlessRuntime:
    """One LuaJIT state for the module (loading a handler does not change it)."""
    return ServerlessRuntime([STABLE, CANARY])


ids = st.one_of(st.uuids().map(str), st.text(min_size=1, max_size=8))
id_pools = st.lists(ids, min_size=1, max_size=12, unique=True)
header_values = st.text(min_size=1, max_size=8)


@st.composite
def headers(draw: st.DrawFn) -> HeaderOverride:
    always, never = draw(st.lists(header_values, min_size=2, max_size=2, unique=True))
    name = draw(st.text(alphabet=TOKEN, min_size=1, max_size=12))
    return HeaderOverride(name=name, always=always, never=never)


@dataclass(frozen=True)
class Case:
    routing: CohortRouting
    consumer: Consumer | None
    sent: dict[str, str | list[str]]  # request headers as the client sent them
    first_value: str | None  # what kong.request.get_header gives for the override header


@st.composite
def cases(draw: st.DrawFn) -> Case:
    pool = draw(id_pools)
    never = frozenset(draw(st.lists(st.sampled_from(pool), max_size=len(pool))))
    always = frozenset(draw(st.lists(st.sampled_from(pool), max_size=len(pool))))
    header = draw(st.none() | headers())
    routing = CohortRouting(never, always, header, STABLE, CANARY, draw(st.booleans()))
    consumer_id = draw(st.none() | st.sampled_from(pool) | ids)
    consumer = None if consumer_id is None else Consumer(consumer_id)
    sent: dict[str, str | list[str]] = {}
    first_value = None
    if header is not None:
        choices = [header.always, header.never, draw(header_values)]
        values = draw(st.lists(st.sampled_from(choices), max_size=3))
        if values:
            # any capitalisation of the name: header names are case-insensitive
            name = "".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in header.name)
            sent[name] = values[0] if len(values) == 1 else values
            first_value = values[0]
    return Case(routing, consumer, sent, first_value)


def route(case: Case) -> str | None:
    handler = runtime().load(render_access_lua(case.routing))
    return runtime().request(handler, case.consumer, case.sent)


def _in(case: Case, ids_: frozenset[str]) -> bool:
    return case.consumer is not None and case.consumer.id in ids_


# ------------------------------------------------------------------ the rules


@SANE
@given(cases())
def test_a_never_canary_consumer_never_reaches_canary_or_baseline(case: Case) -> None:
    """Stable only (the baseline lives in the main upstream, so "not untouched" too), unless
    the header says always and the canary is live."""
    if not _in(case, case.routing.never_ids):
        return
    header = case.routing.header
    override = header is not None and case.first_value == header.always
    if override and case.routing.canary_live:
        assert route(case) == CANARY
    else:
        assert route(case) == STABLE


@SANE
@given(cases())
def test_never_wins_over_always(case: Case) -> None:
    routing = replace(case.routing, always_ids=case.routing.always_ids | case.routing.never_ids)
    case = replace(case, routing=routing, sent={}, first_value=None)
    if _in(case, routing.never_ids):
        assert route(case) == STABLE


@SANE
@given(cases())
def test_the_header_wins_over_both(case: Case) -> None:
    header = case.routing.header
    if header is None or case.first_value is None:
        return
    if case.first_value == header.never:
        assert route(case) == STABLE
    elif case.first_value == header.always and case.routing.canary_live:
        assert route(case) == CANARY


@SANE
@given(cases())
def test_no_request_reaches_a_canary_without_weight(case: Case) -> None:
    case = replace(case, routing=replace(case.routing, canary_live=False))
    assert route(case) != CANARY


@SANE
@given(cases())
def test_always_canary_consumers_reach_the_live_canary(case: Case) -> None:
    live = replace(case.routing, canary_live=True)
    case = replace(case, routing=live, sent={}, first_value=None)
    if _in(case, live.always_ids) and not _in(case, live.never_ids):
        assert route(case) == CANARY


@SANE
@given(cases())
def test_everyone_else_follows_the_split_untouched(case: Case) -> None:
    header = case.routing.header
    overridden = header is not None and case.first_value in (header.always, header.never)
    in_a_cohort = _in(case, case.routing.never_ids) or (
        _in(case, case.routing.always_ids) and case.routing.canary_live
    )
    if not overridden and not in_a_cohort:
        assert route(case) is None


def test_an_always_header_without_canary_weight_follows_the_split_or_the_cohort() -> None:
    routing = CohortRouting(
        frozenset({"n"}), frozenset({"a"}), HeaderOverride("X-Canary", "always", "never"),
        STABLE, CANARY, canary_live=False,
    )  # fmt: skip
    handler = runtime().load(render_access_lua(routing))
    always = {"X-Canary": "always"}
    assert runtime().request(handler, Consumer("n"), always) == STABLE
    assert runtime().request(handler, Consumer("a"), always) is None
    assert runtime().request(handler, None, always) is None


def test_header_values_are_case_sensitive_and_a_repeated_header_counts_its_first() -> None:
    """Values as sent (documented choice); ``get_header`` gives a repeated header's first."""
    routing = CohortRouting(
        frozenset(), frozenset(), HeaderOverride("X-Canary", "always", "never"),
        STABLE, CANARY, canary_live=True,
    )  # fmt: skip
    handler = runtime().load(render_access_lua(routing))
    assert runtime().request(handler, None, {"x-canary": "Always"}) is None
    assert runtime().request(handler, None, {"X-CANARY": ["never", "always"]}) == STABLE
    assert runtime().request(handler, None, {"x-canary": ["always", "never"]}) == CANARY


def test_a_missing_shadow_upstream_is_logged_and_the_request_left_alone() -> None:
    """``set_upstream`` returns ``nil, err`` for an unknown name: logged, split followed."""
    routing = CohortRouting(frozenset({"n"}), frozenset(), None, "gone--stable", CANARY, True)
    handler = runtime().load(render_access_lua(routing))
    runtime().logged()
    assert runtime().request(handler, Consumer("n")) is None
    assert runtime().logged() == [
        "kong-canary cohorts: could not find an Upstream named 'gone--stable'"
    ]


# ------------------------------------------------------------------ quoting and the spec


@SANE
@given(
    never=st.frozensets(st.text(min_size=1), min_size=1, max_size=4),
    value=st.text(min_size=1),
    name=st.text(alphabet=string.printable, min_size=1, max_size=10),
    upstreams=st.lists(st.text(min_size=1), min_size=2, max_size=2, unique=True),
    spec=st.text(),
)
def test_no_text_can_inject_code_and_every_value_arrives_byte_for_byte(
    never: frozenset[str], value: str, name: str, upstreams: list[str], spec: str
) -> None:
    """Arbitrary ids, header name/values, upstream names and spec: the chunk compiles, the
    sandbox runs it, and the values compare equal in Lua to what Python sent."""
    stable, canary = upstreams
    header = HeaderOverride(name, always=value, never=value + "!")
    routing = CohortRouting(never, frozenset(), header, stable, canary, True, spec)
    code = render_access_lua(routing)
    assert lua_syntax_error(code) is None
    assert read_spec(code) == spec
    rt = ServerlessRuntime([stable, canary])
    handler = rt.load(code)
    key = name.lower().replace("_", "-")  # how ngx.req.get_headers keys, as the PDK looks up
    assert rt.request(handler, None, {key: value}) == canary
    assert rt.request(handler, None, {key: value + "!"}) == stable
    for consumer_id in never:
        assert rt.request(handler, Consumer(consumer_id)) == stable


@SANE
@given(st.text())
def test_lua_string_round_trips(text: str) -> None:
    lua = runtime().lua
    assert lua.eval(lua_string(text)) == text


def test_ten_thousand_ids_compile_into_sets() -> None:
    never = frozenset(f"consumer-{i}" for i in range(10_000))
    code = render_access_lua(CohortRouting(never, frozenset(), None, STABLE, CANARY, True))
    assert '["consumer-9999"]=true' in code
    handler = runtime().load(code)
    assert runtime().request(handler, Consumer("consumer-4321")) == STABLE
    assert runtime().request(handler, Consumer("consumer-10000")) is None


def test_the_code_is_marked_and_a_users_is_not_ours() -> None:
    code = render_access_lua(CohortRouting(frozenset(), frozenset(), None, STABLE, CANARY, True))
    assert code.startswith(MARKER) and is_ours(code)
    assert read_spec(code) == ""
    user = "return function() kong.service.set_upstream('x') end"
    assert not is_ours(user) and read_spec(user) is None
    damaged = code.replace("-- kong-canary-spec: ", "-- kong-canary-spec: !!")
    assert read_spec(damaged) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"header": HeaderOverride("X-Canary", "same", "same")}, "must differ"),
        ({"header": HeaderOverride("", "a", "b")}, "non-empty"),
        ({"canary_upstream": STABLE}, "must differ"),
        ({"stable_upstream": ""}, "non-empty"),
    ],
)
def test_malformed_routing_is_refused(change: dict[str, object], message: str) -> None:
    routing = CohortRouting(frozenset(), frozenset(), None, STABLE, CANARY, True)
    with pytest.raises(ValueError, match=message):
        render_access_lua(replace(routing, **change))  # type: ignore[arg-type]


def test_the_runtime_is_luajit_with_kongs_sandbox() -> None:
    """Only the sandbox's safe globals: ``require`` refuses, ``setmetatable`` is absent."""
    rt = runtime()
    assert str(rt.lua.eval("jit.version")).startswith("LuaJIT 2.1")
    probe = rt.load("return function() return require('os') end")
    with pytest.raises(Exception, match="require 'os' not allowed within sandbox"):
        rt.request(probe, None)
    probe = rt.load("return function() setmetatable({}, {}) end")
    with pytest.raises(Exception, match="setmetatable"):
        rt.request(probe, None)
