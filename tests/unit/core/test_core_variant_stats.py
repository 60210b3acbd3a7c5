"""Per-variant rate, 5xx ratio and P99 between two counter readings, as Prometheus would."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.variant_stats import (
    GatewayReading,
    VariantCounters,
    histogram_quantile,
    variant_stats,
)

BOUNDS = (10.0, 20.0, 50.0, math.inf)


def test_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    # 100 observations: 50 <= 10, 40 in (10, 20], 10 in (20, 50]: rank 99 is the 9th of 10
    # in (20, 50] -> 20 + 30 * 9/10
    assert histogram_quantile(0.99, BOUNDS, (50, 90, 100, 100)) == 47.0
    assert histogram_quantile(0.5, BOUNDS, (50, 90, 100, 100)) == 10.0
    # the first bucket starts at 0
    assert histogram_quantile(0.25, BOUNDS, (100, 100, 100, 100)) == 2.5


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, BOUNDS, (0, 0, 10, 100)) == 50.0


def test_quantile_without_observations_is_unknown() -> None:
    assert histogram_quantile(0.99, BOUNDS, (0, 0, 0, 0)) is None
    assert histogram_quantile(0.99, BOUNDS, ()) is None


@given(
    st.lists(st.integers(0, 1000), min_size=4, max_size=4).map(
        lambda xs: tuple(float(sum(xs[: i + 1])) for i in range(4))
    ),
    st.floats(0.01, 1.0),
)
def test_quantile_stays_within_the_finite_range(cumulative, q) -> None:
    value = histogram_quantile(q, BOUNDS, cumulative)
    if cumulative[-1] == 0:
        assert value is None
    else:
        assert 0.0 <= value <= 50.0


def _reading(at, ok, errors, buckets):
    return GatewayReading(
        at, {"canary": VariantCounters({"2xx": ok, "5xx": errors}, tuple(map(float, buckets)))}
    )


def test_stats_are_the_increase_over_the_window() -> None:
    older = _reading(100.0, 1000, 10, (500, 900, 1010, 1010))
    newer = _reading(110.0, 1090, 20, (550, 990, 1110, 1110))
    stats = variant_stats(older, newer, BOUNDS)["canary"]
    assert stats.rps == 10.0  # 100 requests in 10 s
    assert stats.error_ratio == 0.1
    assert stats.p99_ms == 47.0  # from the 100 new observations only


def test_a_counter_reset_counts_from_zero() -> None:
    older = _reading(100.0, 1000, 20, (500, 900, 1020, 1020))
    newer = _reading(110.0, 40, 10, (10, 40, 50, 50))  # a worker restarted
    stats = variant_stats(older, newer, BOUNDS)["canary"]
    assert stats.rps == 5.0
    assert stats.error_ratio == 0.2


def test_no_requests_means_unknown_ratio_and_p99_not_zero() -> None:
    reading = _reading(100.0, 5, 1, (6, 6, 6, 6))
    later = GatewayReading(105.0, reading.variants)
    stats = variant_stats(reading, later, BOUNDS)["canary"]
    assert (stats.rps, stats.error_ratio, stats.p99_ms) == (0.0, None, None)
    assert variant_stats(reading, reading, BOUNDS) == {}  # no time passed: no rate
