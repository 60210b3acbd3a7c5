"""``sidecar.metrics.Series`` gives exactly what ``labels()`` gives: the same child object,
so a count through the series is a count on the metric's own series."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge

from sidecar.metrics import Series

label_values = st.text(max_size=12)


@given(calls=st.lists(st.tuples(label_values, label_values, label_values), max_size=30))
def test_a_series_is_the_child_labels_returns(calls: list[tuple[str, str, str]]) -> None:
    """The oracle is ``labels()`` itself, asked after the series (and before, for values the
    series has not seen yet): every call, first or repeated, is the very same child."""
    counter = Counter("c", "h", ["a", "b", "c"], registry=CollectorRegistry())
    series = Series(counter)
    for values in calls:
        child = series(*values)
        assert child is counter.labels(*values)
        assert child is series(*values)


@given(calls=st.lists(st.tuples(label_values, label_values), max_size=30))
def test_counts_through_a_series_are_the_metrics_samples(calls: list[tuple[str, str]]) -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "h", ["a", "b"], registry=registry)
    series = Series(counter)
    expected: dict[tuple[str, str], float] = {}
    for values in calls:
        series(*values).inc()
        expected[values] = expected.get(values, 0) + 1
    for (a, b), count in expected.items():
        assert registry.get_sample_value("c_total", {"a": a, "b": b}) == count


def test_keyword_labels_and_positional_values_name_one_child() -> None:
    """``record_split`` asked ``labels(upstream=…, variant=…)``; the series passes the values
    in the order the metric declares its labels, which is the same child."""
    gauge = Gauge("g", "h", ["upstream", "variant"], registry=CollectorRegistry())
    assert Series(gauge)("orders", "canary") is gauge.labels(upstream="orders", variant="canary")
