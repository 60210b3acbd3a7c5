"""The hot path's parsing and tally, entry shapes taken from the recorded batches.

Field semantics are Kong's serializer (``kong/pdk/log.lua``): ``tries`` is
``ctx.balancer_data.tries`` (absent, or ``{}`` from cjson, when no target was tried) and
``latencies.proxy`` is ``ctx.KONG_WAITING_TIME or -1``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import ApiError
from sidecar.gateway.entries import MAX_LATENCY_MS, parse_batch, tally
from sidecar.gateway.metrics import BOUNDS
from tests.gateway.conftest import entries_of

ORDERS = {("127.0.0.1", 9111): "stable", ("127.0.0.1", 9112): "baseline"}


class StaticLookup:
    """A fixed map; ``on_miss`` never finds anything (the resolver has its own tests)."""

    def __init__(self, maps: Mapping[str, Mapping[tuple[str, int], str]]) -> None:
        self.maps = maps
        self.misses: list[tuple[str, tuple[str, int]]] = []

    def resolve(self, host: str) -> tuple[str | None, str]:
        return (host, "") if host in self.maps else (None, "unknown_upstream")

    def map_for(self, upstream: str):  # type: ignore[no-untyped-def]
        return self.maps.get(upstream)

    def on_miss(self, upstream: str, address: tuple[str, int]) -> tuple[str | None, str]:
        self.misses.append((upstream, address))
        return None, "unknown_address"


class AskedLookup(StaticLookup):
    """Remembers every upstream name it was asked about (each would be a Kong call)."""

    def __init__(self, maps: Mapping[str, Mapping[tuple[str, int], str]]) -> None:
        super().__init__(maps)
        self.asked: list[str] = []

    def map_for(self, upstream: str):  # type: ignore[no-untyped-def]
        self.asked.append(upstream)
        return super().map_for(upstream)


def entry(port: int = 9111, status: int = 200, request: float = 10, proxy: float = 9) -> dict:
    base = copy.deepcopy(entries_of("3.4.2")[0])
    base["tries"][-1]["port"] = port
    base["response"]["status"] = status
    base["latencies"]["request"] = request
    base["latencies"]["proxy"] = proxy
    return base


def run(entries: list, **kwargs):  # type: ignore[no-untyped-def]
    return tally(entries, StaticLookup({"orders": ORDERS}), BOUNDS, **kwargs)


def test_parse_batch_accepts_an_array_and_a_bare_object() -> None:
    one = entry()
    assert parse_batch(json.dumps([one, one]).encode()) == [one, one]
    # max_batch_size 1: Kong posts the entry itself, not a one-element array
    assert parse_batch(json.dumps(one)) == [one]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b'[{"latencies": {"request": NaN}}]', "invalid_json"),
        (b"[" * 100000, "invalid_json"),
        (b'"a string"', "invalid_batch"),
        (b"42", "invalid_batch"),
        (b"[]", "empty_batch"),
    ],
)
def test_parse_batch_refuses_what_is_not_a_batch(body: bytes, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_batch(body)
    assert (caught.value.status, caught.value.code) == (400, code)


def test_counts_per_variant_class_and_bucket() -> None:
    result = run([entry(9111, 200, 3, 2), entry(9111, 503, 3.5, 3), entry(9112, 200, 70, 61)])
    stable = result.series[("orders", "stable", "orders")]
    baseline = result.series[("orders", "baseline", "orders")]
    assert stable.codes == {"2xx": 1, "5xx": 1}
    assert baseline.codes == {"2xx": 1}
    assert stable.request[BOUNDS.index(3.0)] == 1 and stable.request[BOUNDS.index(4.0)] == 1
    assert stable.request_sum == 6.5
    assert baseline.request[BOUNDS.index(80.0)] == 1  # 70 <= 80, > 60
    assert baseline.upstream[BOUNDS.index(80.0)] == 1  # 61 > 60
    assert result.accepted == 3 and not result.rejected and not result.unmapped


def test_the_last_try_is_the_one_that_counts() -> None:
    retried = entry(9112, 200)
    retried["tries"].insert(0, {"ip": "127.0.0.1", "port": 9111, "state": "failed", "code": 502})
    result = run([retried])
    assert list(result.series) == [("orders", "baseline", "orders")]


def test_no_target_reached_means_no_upstream_latency() -> None:
    result = run([entry(9111, 502, 5, -1)])
    stable = result.series[("orders", "stable", "orders")]
    assert stable.codes == {"5xx": 1} and stable.upstream_count == 0 and sum(stable.upstream) == 0
    assert sum(stable.request) == 1


def test_latency_beyond_the_last_bound_lands_in_inf() -> None:
    result = run([entry(request=120000, proxy=119000)])
    stable = result.series[("orders", "stable", "orders")]
    assert stable.request[-1] == 1 and stable.upstream[-1] == 1


@pytest.mark.parametrize("tries", [None, [], {}], ids=["absent", "empty-list", "cjson-empty"])
def test_entries_without_tries_are_unmapped_not_rejected(tries: object) -> None:
    e = entry(status=503)
    if tries is None:
        del e["tries"]
    else:
        e["tries"] = tries
    result = run([e, entry()])
    assert result.unmapped == {("orders", "no_tries"): 1}
    assert result.accepted == 1


def test_every_bad_entry_is_counted_once_with_its_reason() -> None:
    no_service = entry()
    del no_service["service"]
    bad_status = entry(status=200)
    bad_status["response"]["status"] = "200"
    status_600 = entry(status=600)
    negative = entry(request=-5)
    bad_latency = entry()
    bad_latency["latencies"] = {"request": "slow", "proxy": 1}
    bad_try = entry()
    bad_try["tries"][-1]["port"] = "9111"
    not_a_list = entry()
    not_a_list["tries"] = "127.0.0.1:9111"
    unknown_address = entry(port=9999)
    other_upstream = entry()
    other_upstream["service"]["host"] = "payments"
    entries = [
        "a string",
        None,
        no_service,
        bad_status,
        status_600,
        negative,
        bad_latency,
        bad_try,
        not_a_list,
        unknown_address,
        other_upstream,
        entry(),
    ]
    result = run(entries)
    assert result.rejected == {
        "not_an_object": 2,
        "no_service": 1,
        "bad_status": 2,
        "bad_latencies": 2,
        "bad_tries": 2,
        "unknown_upstream": 1,
    }
    assert result.unmapped == {("orders", "unknown_address"): 1}
    assert result.unknown_upstreams == {"payments"}
    assert result.accepted == 1
    assert result.accepted + result.rejected_count + result.unmapped_count == len(entries)


def test_override_replaces_service_host() -> None:
    e = entry()
    e["service"]["host"] = "10.0.0.5"  # a service pointing at a host, not at the upstream
    assert run([e], upstream="orders").accepted == 1
    assert run([e]).rejected == {"unknown_upstream": 1}


def test_upstreams_the_caller_may_not_touch_are_rejected() -> None:
    result = run([entry(), entry(status=503)], allowed=lambda name: name != "orders")
    assert result.rejected == {"upstream_not_allowed": 2} and result.accepted == 0


def test_recorded_entries_of_every_version_take_the_fast_path() -> None:
    """2.8.5 entries lack upstream_status and *_ns fields; 3.9.3 adds source and
    latencies.receive – none of that matters to the tally."""
    for version in ("2.8.5", "3.4.2", "3.9.3"):
        lookup = StaticLookup(
            {"orders": {**ORDERS, ("127.0.0.1", 9113): "canary"}},
        )
        entries = entries_of(version)
        result = tally(entries, lookup, BOUNDS)
        assert result.accepted == len(entries), version
        assert lookup.misses == []


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("request", "1e309"),  # JSON's way to Infinity: Python parses it to inf
        ("request", "-1e309"),
        ("request", "1e308"),  # finite, but two of them sum to +Inf
        ("request", "true"),
        ("request", "false"),
        ("request", "2147483647"),  # past Kong's largest timeout (2^31-2 ms)
        ("proxy", "1e309"),
        ("proxy", "1e308"),
        ("proxy", "true"),
        ("proxy", "-2"),  # Kong writes -1 for "no target answered", nothing else below 0
    ],
)
def test_non_finite_huge_and_boolean_latencies_are_refused_per_entry(field: str, raw: str) -> None:
    """Built as raw JSON, as Kong's queue would post it, so parsing is part of the test."""
    bad = entry()
    bad["latencies"][field] = "PLACEHOLDER"
    body = json.dumps([bad, entry(request=12, proxy=10)]).replace('"PLACEHOLDER"', raw)
    result = run(parse_batch(body.encode()))
    assert result.rejected == {"bad_latencies": 1}
    assert result.accepted == 1
    stable = result.series[("orders", "stable", "orders")]
    assert stable.request_sum == 12 and stable.upstream_sum == 10


def test_recorded_latencies_at_the_edges_still_count() -> None:
    """0, float milliseconds (``request_time * 1000``), -1 proxy and the largest timeout."""
    edges = [entry(request=0, proxy=0), entry(request=10.5, proxy=-1)]
    edges.append(entry(request=2**31 - 2, proxy=2**31 - 2))
    result = run(edges)
    assert result.accepted == 3 and not result.rejected


def test_a_float_status_is_refused_like_a_string_one() -> None:
    odd = entry()
    odd["response"]["status"] = 200.0
    assert run([odd]).rejected == {"bad_status": 1}


@pytest.mark.parametrize("host", [".", "..", "../health", "orders/..", "-orders", "a" * 256])
def test_a_service_host_that_breaks_the_upstream_name_rule_never_reaches_the_lookup(
    host: str,
) -> None:
    e = entry()
    e["service"]["host"] = host
    lookup = AskedLookup({"orders": ORDERS})
    result = tally([e, entry()], lookup, BOUNDS)
    assert result.rejected == {"invalid_upstream": 1}
    assert lookup.asked == ["orders"]


@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.booleans(),
    ),
    st.one_of(st.floats(), st.integers(min_value=-5, max_value=2**40), st.booleans()),
)
def test_a_latency_counts_only_as_a_finite_number_of_ms_and_sums_stay_finite(
    request_ms: object, proxy_ms: object
) -> None:
    e = entry()
    e["latencies"]["request"] = request_ms
    e["latencies"]["proxy"] = proxy_ms
    result = run([e, e])

    def ok(value: object) -> bool:
        return type(value) in (int, float) and 0 <= value <= MAX_LATENCY_MS  # type: ignore[operator]

    expected = ok(request_ms) and ((proxy_ms == -1 and type(proxy_ms) is not bool) or ok(proxy_ms))
    assert result.accepted == (2 if expected else 0)
    assert result.rejected == ({} if expected else {"bad_latencies": 2})
    for series in result.series.values():
        assert math.isfinite(series.request_sum) and math.isfinite(series.upstream_sum)
