"""The armed guard as one Kong upstream tag (sidecar.core.guard_tags)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.guard_config import GuardConfig
from sidecar.core.guard_tags import (
    GUARD_TAG,
    TRIP_TAG,
    ArmedGuard,
    GuardTrip,
    claim_trip,
    guard_tag,
    read_guard,
    read_trip,
    trip_tag,
    with_guard,
    with_trip,
)
from sidecar.core.lease import Marks, write_marks

# kong/db/schema/typedefs.lua validate_tag: printable ASCII except "," and "/"
KONG_TAG = re.compile(r"^[ !-+\-.0-~]+$")

configs = st.builds(
    GuardConfig,
    errors_ratio=st.floats(1.01, 1000),
    p99_ratio=st.floats(1.01, 100),
    min_requests=st.integers(1, 1_000_000),
    confidence=st.floats(0.9, 0.999999),
    reference=st.sampled_from(["baseline", "baseline+stable"]),
    trip_on_no_traffic=st.booleans(),
    alert_url=st.one_of(st.none(), st.just("https://hooks.slack.com/services/T0/B0/xyz,/")),
)


ids = st.one_of(st.none(), st.text("abcdef0123456789", min_size=8, max_size=16))


@given(configs, ids, ids)
def test_a_guard_round_trips_through_a_valid_kong_tag(config: GuardConfig, ramp, guard_id) -> None:  # type: ignore[no-untyped-def]
    tag = guard_tag(config, ramp, guard_id)
    assert KONG_TAG.match(tag), tag
    assert read_guard(["managed-by=kong-canary", tag]) == ArmedGuard(config, ramp, guard_id)


trips = st.builds(
    GuardTrip,
    guard=ids,
    ramp=ids,
    metric=st.sampled_from([None, "5xx", "p99_latency", "traffic"]),
    message=st.text(max_size=300),  # any text, also "," "/" and non-ASCII
    replica=st.text(min_size=1, max_size=80),
    at=st.floats(0, 4e9),
)


@given(trips)
def test_a_trip_round_trips_through_a_valid_kong_tag(trip: GuardTrip) -> None:
    tag = trip_tag(trip)
    assert KONG_TAG.match(tag), tag
    assert read_trip(["team=payments", guard_tag(GuardConfig(), None), tag]) == trip
    assert read_guard([tag]) is None  # the trip's prefix is not the guard's


def test_the_first_process_claims_a_trip_the_others_find_it_recorded() -> None:
    armed = guard_tag(GuardConfig(), "ramp1", "g1")
    trip = GuardTrip("g1", "ramp1", "5xx", "canary 30 %", "pod-a:7", 1.0)
    assert claim_trip(["team=payments", armed], "g1", trip) == "claimed"
    recorded = with_trip(["team=payments", armed], trip_tag(trip))
    assert claim_trip(recorded, "g1", trip) == "tripped"  # no second audit line
    # re-armed (a new id) or disarmed meanwhile: that trip is no one's to record
    assert claim_trip(with_guard(recorded, guard_tag(GuardConfig(), None, "g2")), "g1", trip) == (
        "gone"
    )
    assert claim_trip(with_guard(recorded, None), "g1", trip) == "gone"
    # an older arming's trip does not count for a new arming
    rearmed = with_guard(recorded, guard_tag(GuardConfig(), None, "g2"))
    assert claim_trip(rearmed, "g2", trip) == "claimed"


def test_an_unreadable_trip_is_no_trip() -> None:
    for payload in ("!!!", "e30", "eyJndWFyZCI6MX0"):  # junk, {}, missing fields
        assert read_trip([TRIP_TAG + payload]) is None


def test_other_tags_are_kept_and_ours_survive_the_lease_marks() -> None:
    tag = guard_tag(GuardConfig(), "abc123", "g1")
    tags = with_guard(["team=payments", "kong-canary-lease=1800000000"], tag)
    assert tags == ("team=payments", "kong-canary-lease=1800000000", tag)
    assert tag in write_marks(tags, Marks(managed=True))  # a split change keeps the guard
    assert with_guard(tags, None) == ("team=payments", "kong-canary-lease=1800000000")


def test_an_unreadable_tag_is_no_guard() -> None:
    for payload in ("!!!", "e30", "eyJndWFyZCI6eyJub3BlIjoxfX0"):  # junk, {}, unknown field
        assert read_guard([GUARD_TAG + payload]) is None
    assert read_guard(["team=payments"]) is None
