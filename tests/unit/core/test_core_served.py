"""``sidecar.core.served.judge``: the status a monitored stage polls for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.served import FAILED, RUNNING, SUCCEEDED, expected_weights, judge
from sidecar.core.split import TOTAL, Split

splits = st.builds(
    lambda c, b: Split(stable=TOTAL - c - b, baseline=b, canary=c),
    st.integers(0, TOTAL // 2),
    st.integers(0, TOTAL // 2),
)
times = st.floats(0, 1e10, allow_nan=False)


def _seen(confirmed: bool) -> dict:
    return {"confirmed": confirmed, "message": "node b: balancer has x=1"}


@given(splits, splits, st.booleans(), times, times)
def test_a_replaced_split_is_failed_whatever_the_nodes_show(
    expected: Split, current: Split, confirmed: bool, now: float, until: float
) -> None:
    if current == expected:
        return
    verdict = judge(expected, current, _seen(confirmed), now=now, until=until)
    assert verdict.status == FAILED and "another change" in verdict.message


@given(splits, times, times)
def test_served_everywhere_succeeds_even_after_the_window(
    expected: Split, now: float, until: float
) -> None:
    assert judge(expected, expected, _seen(True), now=now, until=until).status == SUCCEEDED


@given(splits, times, times)
def test_not_served_runs_until_the_window_closes_then_fails(
    expected: Split, now: float, until: float
) -> None:
    verdict = judge(expected, expected, _seen(False), now=now, until=until)
    assert verdict.status == (FAILED if now >= until else RUNNING)
    assert "node b" in verdict.message  # says which node lags and what it shows


def test_nothing_to_check_means_kongs_database_is_all_there_is() -> None:
    split = Split.STABLE_ONLY
    assert judge(split, split, None, now=0, until=1).status == SUCCEEDED
    assert judge(split, None, None, now=0, until=1).status == FAILED


def test_expected_weights_ignore_zero_weights() -> None:
    assert expected_weights({"a:80": 3, "b:80": 0}) == {"a:80": 3}
