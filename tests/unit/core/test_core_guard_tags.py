"""The armed guard as one Kong upstream tag (sidecar.core.guard_tags)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.guard_config import GuardConfig
from sidecar.core.guard_tags import GUARD_TAG, guard_tag, read_guard, with_guard
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


@given(configs, st.one_of(st.none(), st.text("abcdef0123456789", min_size=8, max_size=16)))
def test_a_guard_round_trips_through_a_valid_kong_tag(config: GuardConfig, ramp) -> None:  # type: ignore[no-untyped-def]
    tag = guard_tag(config, ramp)
    assert KONG_TAG.match(tag), tag
    assert read_guard(["managed-by=kong-canary", tag]) == (config, ramp)


def test_other_tags_are_kept_and_ours_survive_the_lease_marks() -> None:
    tag = guard_tag(GuardConfig(), "abc123")
    tags = with_guard(["team=payments", "kong-canary-lease=1800000000"], tag)
    assert tags == ("team=payments", "kong-canary-lease=1800000000", tag)
    assert tag in write_marks(tags, Marks(managed=True))  # a split change keeps the guard
    assert with_guard(tags, None) == ("team=payments", "kong-canary-lease=1800000000")


def test_an_unreadable_tag_is_no_guard() -> None:
    for payload in ("!!!", "e30", "eyJndWFyZCI6eyJub3BlIjoxfX0"):  # junk, {}, unknown field
        assert read_guard([GUARD_TAG + payload]) is None
    assert read_guard(["team=payments"]) is None
