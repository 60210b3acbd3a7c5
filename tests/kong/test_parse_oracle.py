"""``sidecar.kong.parse`` gives what it gave before its fast paths (plain loops instead of
``all(...)``, a ``/health`` row built without an intermediate Target): the old versions of
the functions that changed are kept below as the oracle, and any body, well-formed or not,
must give the equal model or the same KongProtocolError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.kong import parse
from sidecar.kong.errors import KongProtocolError
from sidecar.kong.models import Address, Target, TargetHealth
from sidecar.kong.parse import Call

CALL = Call("GET", "/upstreams/orders/health")


# ---- the oracle: the functions as they were ---------------------------------------------------
def old_page(body: Any, call: Call) -> tuple[list[dict[str, Any]], str | None]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise call.fail("expected a page object with a 'data' list", body)
    items = body["data"]
    if not all(isinstance(item, dict) for item in items):
        raise call.fail("expected 'data' to be a list of objects", body)
    offset = body.get("offset")
    if offset is None or offset == "":
        return items, None
    if isinstance(offset, bool) or not isinstance(offset, str | int):
        raise call.fail("expected 'offset' to be a string", body)
    return items, str(offset)


def old_target(body: Any, call: Call) -> Target:
    obj = parse.entity(body, call)
    raw, weight = obj.get("target"), obj.get("weight")
    if not isinstance(raw, str) or not parse._is_int(weight):
        raise call.fail("expected a target with string 'target' and integer 'weight'", body)
    parent = obj.get("upstream")
    upstream_id = parent.get("id") if isinstance(parent, dict) else None
    return Target(
        id=obj["id"],
        target=parse._normalised(raw),
        weight=weight,
        tags=old_tags(obj.get("tags"), body, call),
        upstream_id=upstream_id if isinstance(upstream_id, str) else None,
    )


def old_target_health(body: Any, call: Call) -> TargetHealth:
    base = old_target(body, call)
    health = body.get("health")
    data = body.get("data")
    addresses: tuple[Address, ...] | None = None
    total: int | None = None
    if isinstance(data, dict):
        listed = data.get("addresses")
        if not isinstance(listed, list):
            raise call.fail("expected health 'data.addresses' to be a list", body)
        addresses = tuple(parse._address(item, body, call) for item in listed)
        weight = data.get("weight")
        if isinstance(weight, dict) and parse._is_int(weight.get("total")):
            total = weight["total"]
    return TargetHealth(
        target=base.target,
        id=base.id,
        weight=base.weight,
        health=health if isinstance(health, str) else None,
        addresses=addresses,
        total_weight=total,
        tags=base.tags,
    )


def old_tags(value: Any, body: Any, call: Call) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise call.fail("expected 'tags' to be a list of strings", body)
    return tuple(value)


# ---- bodies: Kong's shapes, half of them with one field wrong or missing --------------------
_JUNK = st.none() | st.booleans() | st.integers(-2, 70000) | st.text(max_size=4) | st.just([])
_TAGS = st.none() | st.lists(st.sampled_from(["variant=canary", "managed-by=kong-canary", "a"]))
_BAD_TAGS = st.lists(st.sampled_from(["ok", 1, None]), min_size=1).filter(
    lambda tags: not all(isinstance(tag, str) for tag in tags)
)
_MISSING = object()


def _body(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A well-formed object of ``fields``, or one with a field deleted or replaced by junk
    (junk tags too: a list holding a non-string)."""
    good = st.fixed_dictionaries(fields)

    @st.composite
    def spoilt(draw: st.DrawFn) -> dict[str, Any]:
        body = draw(good)
        name = draw(st.sampled_from(sorted(fields)))
        junk = draw(st.just(_MISSING) | _JUNK | _BAD_TAGS)
        if junk is _MISSING:
            body.pop(name)
        else:
            body[name] = junk
        return body

    return good | spoilt()


_ID = st.sampled_from(["a7c5e2f0-1111-2222-3333-444455556666", "t-1"])
_ADDRESS = _body(
    {
        "ip": st.sampled_from(["10.0.0.1", "::1"]),
        "port": st.integers(0, 65535),
        "weight": st.integers(0, 100),
        "health": st.sampled_from(["HEALTHY", "UNHEALTHY"]),
    }
)
_TARGET = {
    "id": _ID,
    "target": st.sampled_from(["10.0.0.1:80", "010.0.0.1", "api.local", "bad host"]),
    "weight": st.integers(0, 65535),
    "tags": _TAGS,
    "upstream": _body({"id": st.just("u-1")}),
}
_HEALTH_ROW = _body(
    {
        **_TARGET,
        "health": st.sampled_from(["HEALTHY", "DNS_ERROR", "HEALTHCHECKS_OFF"]),
        "data": st.none()
        | _body(
            {
                "addresses": st.lists(_ADDRESS, max_size=3),
                "weight": _body({"total": st.integers(0, 9)}),
            }
        ),
    }
)
_PAGE = (
    _body(
        {
            "data": st.lists(st.just({"id": "x"}) | _JUNK, max_size=4),
            "offset": st.sampled_from([None, "", "b2Zmc2V0", 7]),
        }
    )
    | _JUNK
)


def _outcome(parse_one: Callable[[Any, Call], Any], body: Any) -> tuple[str, Any]:
    try:
        return "parsed", parse_one(body, CALL)
    except KongProtocolError as exc:
        return "refused", (str(exc), exc.method, exc.path)


def _agree(new: Callable[[Any, Call], Any], old: Callable[[Any, Call], Any], body: Any) -> None:
    got, expected = _outcome(new, body), _outcome(old, body)
    assert got == expected, json.dumps(body, default=str)
    if got[0] == "parsed":
        assert repr(got[1]) == repr(expected[1])  # the same types inside, not only equal


@settings(max_examples=400, deadline=None)
@given(_HEALTH_ROW)
def test_a_health_row_parses_as_before(body: Any) -> None:
    _agree(parse.target_health, old_target_health, body)


@settings(max_examples=300, deadline=None)
@given(_body(_TARGET))
def test_a_target_parses_as_before(body: Any) -> None:
    _agree(parse.target, old_target, body)


@settings(max_examples=300, deadline=None)
@given(_TAGS | _BAD_TAGS | _JUNK)
def test_tags_parse_as_before(value: Any) -> None:
    """What ``upstream`` and the targets' parsers changed: their tags' check, a plain loop."""
    body = {"tags": value}
    _agree(
        lambda b, call: parse._tags(b["tags"], b, call),
        lambda b, call: old_tags(b["tags"], b, call),
        body,
    )


@settings(max_examples=300, deadline=None)
@given(_PAGE)
def test_a_page_parses_as_before(body: Any) -> None:
    _agree(parse.page, old_page, body)
