"""The upstream lock's pure decisions: names, claims in tags, takeover, renewal, backoff."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.upstream_lock import (
    Claim,
    Verdict,
    backoff,
    decide,
    expired,
    lock_name,
    needs_renewal,
    read_claim,
    tag_safe,
)

HOSTNAMES = st.from_regex(
    r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True
)
HOLDERS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
TIMES = st.floats(1e9, 3e9, allow_nan=False)
# Kong tags: printable ASCII without "," and "/" (kong/api/endpoints.lua TAGS_*_REGEX)
KONG_TAG = re.compile(r"^[\x21-\x2b\x2d\x2e\x30-\x7e]+$")


@given(HOSTNAMES, HOSTNAMES)
def test_lock_name_is_one_dns_label_and_one_per_upstream(a: str, b: str) -> None:
    name = lock_name(a)
    assert re.fullmatch(r"[a-z0-9-]{1,63}", name)  # Kong's upstream name rule: a hostname
    assert lock_name(a) == name
    assert (lock_name(a) == lock_name(b)) == (a == b)


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8))
def test_a_cached_lock_name_is_the_hash_of_the_name(names: list[str]) -> None:
    """The oracle: the name as it was computed before it was cached, every time."""
    for upstream in names + names:
        digest = hashlib.sha256(upstream.encode()).hexdigest()[:32]
        assert lock_name(upstream) == f"kong-canary-lock-{digest}"


@given(HOSTNAMES, HOLDERS, TIMES)
def test_a_claim_survives_the_round_trip_through_kong_tags(upstream, holder, until) -> None:
    claim = Claim(upstream, tag_safe(holder), round(until, 3))
    tags = claim.tags()
    assert all(KONG_TAG.match(t) for t in tags)
    back = read_claim(tags)
    assert back.upstream == claim.upstream and back.holder == claim.holder
    assert back.until is not None and abs(back.until - claim.until) < 1e-3


@given(HOLDERS, HOLDERS, TIMES, TIMES, st.floats(0, 60))
@settings(max_examples=300)
def test_a_live_lock_of_someone_else_is_never_taken_over(me, other, until, now, skew) -> None:
    """Safety: before its expiry plus the skew allowance nobody else may take a lock;
    liveness: after it, anyone may (a killed holder cannot wedge the upstream)."""
    claim = Claim("orders", other, until)
    verdict = decide(claim, me, now, skew)
    if other == me:
        assert verdict is Verdict.OURS
    elif now < until + skew:
        assert verdict is Verdict.WAIT
        assert not expired(claim, now, skew)
    else:
        assert verdict is Verdict.TAKE_OVER
        assert expired(claim, now, skew)


def test_a_lock_without_a_readable_expiry_is_taken_over() -> None:
    claim = read_claim(["kong-canary-lock", "kong-canary-lock-until=soon"])
    assert claim.until is None
    assert decide(claim, "me", 0.0, 5.0) is Verdict.TAKE_OVER


@given(TIMES, st.floats(0, 3600), st.floats(1, 600))
def test_renewal_starts_when_half_of_the_lock_is_gone(acquired, elapsed, ttl) -> None:
    until = acquired + ttl
    assert needs_renewal(until, acquired + elapsed, ttl) == (ttl - elapsed < ttl / 2)


@given(st.integers(0, 10_000), st.floats(0, 1))
def test_backoff_is_jittered_under_a_growing_capped_ceiling(attempt, fraction) -> None:
    delay = backoff(attempt, fraction, base=0.01, cap=0.25)
    assert 0 <= delay <= min(0.25, 0.01 * 2 ** min(attempt, 30))
    assert backoff(attempt, 1.0) >= backoff(max(0, attempt - 1), 1.0)


@given(st.text(max_size=300))
def test_tag_safe_makes_any_text_a_kong_tag(text: str) -> None:
    safe = tag_safe(text)
    assert len(safe) <= 120
    assert safe == "" or KONG_TAG.match(safe)
