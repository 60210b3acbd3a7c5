"""The guard's statistics (sidecar.core.sequential, sidecar.core.guard) and its settings."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.guard import GuardState, Look, VariantLook, p99_estimate
from sidecar.core.guard_config import GuardConfig
from sidecar.core.sequential import (
    ShiryaevRobertsTest,
    bernoulli_log_likelihood_ratio,
    epoch_alpha,
    fisher_log_likelihood_ratio,
    log_mean_exp,
    lower_tail_rejects,
)
from sidecar.core.split import SplitError
from sidecar.gateway.metrics import BOUNDS


def _fisher_pmf(treated: int, control: int, events: int, psi: float) -> dict[int, float]:
    low, high = max(0, events - control), min(events, treated)
    weights = {y: math.comb(treated, y) * math.comb(control, events - y) * psi**y
               for y in range(low, high + 1)}  # fmt: skip
    total = sum(weights.values())
    return {y: w / total for y, w in weights.items()}


@settings(max_examples=200, deadline=None)
@given(
    treated=st.integers(1, 30),
    control=st.integers(1, 300),
    events=st.integers(1, 40),
    null_odds=st.floats(0.5, 20),
    multiplier=st.floats(1.01, 100),
)
def test_each_fisher_look_is_a_fair_bet_under_the_null(
    treated: int, control: int, events: int, null_odds: float, multiplier: float
) -> None:
    """E[LR] = 1 under psi0 (a martingale step) and <= 1 under a smaller odds ratio."""
    events = min(events, treated + control)
    alternative = null_odds * multiplier
    for truth, expected in ((null_odds, 1.0), (null_odds / 2, None)):
        pmf = _fisher_pmf(treated, control, events, truth)
        mean = sum(
            p * math.exp(fisher_log_likelihood_ratio(treated, y, control, events - y,
                                                     [alternative], null_odds)[0])
            for y, p in pmf.items()
        )  # fmt: skip
        if expected is None:
            assert mean <= 1.0 + 1e-9
        else:
            assert mean == pytest.approx(1.0, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(trials=st.integers(1, 500), successes=st.integers(0, 500), null=st.floats(0.001, 0.5))
def test_the_lower_tail_test_rejects_more_with_fewer_successes(
    trials: int, successes: int, null: float
) -> None:
    """The monotonicity the reference P99 bound rests on."""
    successes = min(successes, trials)
    fractions = (0.5, 0.25, 0.1, 0.03)
    if lower_tail_rejects(trials, successes, null, fractions, 0.01) and successes:
        assert lower_tail_rejects(trials, successes - 1, null, fractions, 0.01)


def test_bernoulli_ratio_and_mixture_evidence() -> None:
    ratios = bernoulli_log_likelihood_ratio(10, 3, [0.2, 0.3], 0.1)
    assert ratios[0] == pytest.approx(3 * math.log(2) + 7 * math.log(0.8 / 0.9))
    assert log_mean_exp([0.0, math.log(3)]) == pytest.approx(math.log(2))
    test = ShiryaevRobertsTest(alpha=0.01, size=2, horizon=4)
    assert test.threshold == pytest.approx(math.log(4 / (0.9 * 0.01)))
    assert not test.rejected and test.evidence == -math.inf
    test.add([0.0, 0.0])  # no information: no candidate change point, not counted
    assert test.looks == 0
    test.add([0.0, 5.0])
    assert test.evidence == pytest.approx(log_mean_exp([0.0, 5.0]))
    assert not test.rejected and test.distance > 0
    test.add([0.0, 5.0])  # R = (1 + e^5) e^5 for the second alternative
    assert test.evidence == pytest.approx(log_mean_exp([math.log(2), math.log1p(math.exp(5)) + 5]))
    assert test.rejected and test.distance == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=2), max_size=30))
def test_the_statistic_sums_the_likelihood_ratio_of_every_change_point(
    steps: list[list[float]],
) -> None:
    """Shiryaev–Roberts: R(n) = sum over candidate starts s <= n of prod_{s..n} L(i),
    computed here the long way, over the informative looks only."""
    test = ShiryaevRobertsTest(alpha=0.01, size=2, horizon=100)
    for step in steps:
        test.add(step)
    informative = [step for step in steps if any(step)]
    for index in range(2):
        starts = [sum(step[index] for step in informative[s:]) for s in range(len(informative))]
        expected = log_mean_exp(starts) + math.log(len(starts)) if starts else -math.inf
        assert test.log_statistics[index] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_a_healthy_past_does_not_delay_the_detection_of_a_late_change() -> None:
    """A thousand looks against the alternative, then the evidence for it a fresh test
    gets: the late change trips no later than a fresh test does (the restarted mixture SPRT
    this replaced first had to climb back from the healthy past's deficit)."""

    def looks_to_trip(healthy_looks: int) -> int:
        test = ShiryaevRobertsTest(alpha=0.01, size=1, horizon=1800)
        for _ in range(healthy_looks):
            test.add([-0.5])
        looks = 0
        while not test.rejected:
            test.add([2.0])
            looks += 1
        return looks

    assert looks_to_trip(0) == 7  # 7 x 2 nats past log(1800 / 0.009) = 12.2
    assert looks_to_trip(1000) <= 7


@settings(max_examples=300, deadline=None)
@given(
    alpha=st.floats(0.02, 0.9),
    head_start=st.sampled_from([0.0, 1.0, 2.5]),
    horizon=st.integers(1, 4),
    null_rate=st.floats(0.005, 0.9),
    boost=st.floats(0.05, 1.0),
)
def test_the_chance_of_a_false_trip_in_the_first_epoch_is_at_most_its_budget(
    alpha: float, head_start: float, horizon: int, null_rate: float, boost: float
) -> None:
    """Exact, over every path of ``horizon`` looks: each look's ratio is ``a`` with
    probability ``q`` and ``b = (1 - q a) / (1 - q)`` otherwise (mean 1: the null). With
    ``a = 1/q`` and one look the bound ``(r + E) / A`` is attained, so a bar that forgot
    the head start, or the epoch's budget, fails here."""
    high = 1.0 + boost * (1.0 / null_rate - 1.0)  # a in (1, 1/q]
    low = (1.0 - null_rate * high) / (1.0 - null_rate)
    log_high = math.log(high)
    log_low = math.log(low) if low > 1e-300 else -math.inf

    def trip_probability(test: ShiryaevRobertsTest, looks_left: int) -> float:
        """P(a trip within the looks left), over both outcomes of each look."""
        if not looks_left:
            return 0.0
        total = 0.0
        for probability, log_ratio in ((null_rate, log_high), (1.0 - null_rate, log_low)):
            after = copy.deepcopy(test)
            after.add([log_ratio])
            total += probability * (
                1.0 if after.rejected else trip_probability(after, looks_left - 1)
            )
        return total

    tripped = trip_probability(ShiryaevRobertsTest(alpha, 1, horizon, head_start), horizon)
    assert tripped <= epoch_alpha(alpha, 0) * (1 + 1e-9)


def test_the_epochs_budgets_sum_to_alpha_and_the_bar_rises_after_each_epoch() -> None:
    assert sum(epoch_alpha(0.01, k) for k in range(100_000)) == pytest.approx(0.01, rel=1e-4)
    test = ShiryaevRobertsTest(alpha=0.01, size=1, horizon=10)
    bars = []
    for _ in range(40):
        test.add([-1.0])
        bars.append(test.threshold)
    assert bars[9] == pytest.approx(math.log(10 / 0.009))
    assert bars[10] == pytest.approx(math.log(20 / (0.001 / 2)))  # epoch 1: up to look 20
    assert bars[39] == pytest.approx(math.log(40 / (0.001 / 6)))  # epoch 2: up to look 40


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=len(BOUNDS), max_size=len(BOUNDS)))
def test_the_p99_estimate_lies_in_the_bucket_of_the_99th_percentile(counts: list[int]) -> None:
    estimate = p99_estimate(counts, BOUNDS)
    total = sum(counts)
    if not total:
        assert estimate is None
        return
    assert estimate is not None
    cumulative = 0
    for index, count in enumerate(counts):
        cumulative += count
        if cumulative >= 0.99 * total:
            low = BOUNDS[index - 1] if index else 0.0
            assert low <= estimate <= BOUNDS[index]
            break


def _look(at: float, canary: tuple[int, int], reference: tuple[int, int], *, expected=True):  # type: ignore[no-untyped-def]
    fast = [0] * len(BOUNDS)
    return Look(
        at,
        {
            "canary": VariantLook(canary[0], canary[1], [canary[0], *fast[1:]]),
            "stable": VariantLook(reference[0], reference[1], [reference[0], *fast[1:]]),
        },
        canary_expected=expected,
    )


def test_too_few_requests_is_collecting_not_a_verdict() -> None:
    guard = GuardState(GuardConfig(min_requests=20), BOUNDS, 0.0)
    verdict = guard.observe(_look(1.0, (5, 5), (195, 1)))
    assert verdict.status == "collecting"
    assert guard.view()["variants"]["canary"]["requests"] == 5


def test_an_all_errors_canary_trips_on_5xx_with_figures_in_the_message() -> None:
    guard = GuardState(GuardConfig(min_requests=10), BOUNDS, 0.0)
    verdicts = [guard.observe(_look(float(t), (5, 5), (195, 1))) for t in range(1, 6)]
    assert verdicts[-1].tripped and verdicts[-1].metric == "5xx"
    assert "canary 100.00%" in verdicts[-1].message
    # a tripped guard stays tripped whatever comes next
    assert guard.observe(_look(6.0, (5, 0), (195, 1))).tripped


def test_a_silent_canary_is_reported_and_trips_only_when_asked() -> None:
    for trip in (False, True):
        config = GuardConfig(no_traffic_seconds=30, trip_on_no_traffic=trip)
        guard = GuardState(config, BOUNDS, 0.0)
        verdicts = [guard.observe(_look(float(t), (0, 0), (200, 1))) for t in range(1, 31)]
        assert verdicts[-2].status == "collecting"
        assert verdicts[-1].status == ("tripped" if trip else "no_canary_traffic")
        assert verdicts[-1].metric == "traffic"
    # no share, no complaint
    guard = GuardState(GuardConfig(no_traffic_seconds=5), BOUNDS, 0.0)
    last = [guard.observe(_look(float(t), (0, 0), (200, 1), expected=False)) for t in range(9)]
    assert last[-1].status == "collecting"


def test_empty_guard_is_all_defaults_and_round_trips() -> None:
    config = GuardConfig.from_json({})
    assert config == GuardConfig()
    assert GuardConfig.from_json(config.as_json()) == config
    assert config.alpha == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        ([], "guard", "must be an object"),
        ({"nope": 1}, "guard.nope", "unknown field"),
        ({"errors_ratio": 1}, "guard.errors_ratio", "must be above 1"),
        ({"errors_ratio": "2"}, "guard.errors_ratio", "must be a number"),
        ({"errors_increase": -1}, "guard.errors_increase", "at least 0"),
        ({"p99_ratio": float("nan")}, "guard.p99_ratio", "finite"),
        ({"min_requests": 2.5}, "guard.min_requests", "integer"),
        ({"min_requests": True}, "guard.min_requests", "integer"),
        ({"window_seconds": 0}, "guard.window_seconds", "at least 0.1"),
        ({"confidence": 1}, "guard.confidence", "at most 0.999999"),
        ({"confidence": 0.5}, "guard.confidence", "at least 0.9"),
        ({"reference": "stable"}, "guard.reference", "one of baseline"),
        ({"trip_on_no_traffic": 1}, "guard.trip_on_no_traffic", "true or false"),
        ({"alert_url": "hooks.slack.com/x"}, "guard.alert_url", "absolute http(s) URL"),
        ({"alert_url": "ftp://h/x"}, "guard.alert_url", "absolute http(s) URL"),
        ({"alert_url": 5}, "guard.alert_url", "URL string"),
    ],
)
def test_every_field_is_validated_with_its_name_and_rule(
    raw: object, field: str, rule: str
) -> None:
    with pytest.raises(SplitError) as caught:
        GuardConfig.from_json(raw)
    assert caught.value.field == field
    assert rule in caught.value.rule


def test_fisher_ratio_stays_finite_for_large_supports() -> None:
    """Hundreds of 5xx in one look at odds ratios up to 1e5 (no float overflow)."""
    ratios = fisher_log_likelihood_ratio(500, 300, 500, 200, [2e3, 1e5], 1e3)
    assert all(math.isfinite(r) for r in ratios)
    small = fisher_log_likelihood_ratio(500, 300, 500, 200, [3.0], 2.0)
    exact = _exact_fisher(500, 500, 500, 300, 3) / _exact_fisher(500, 500, 500, 300, 2)
    assert small[0] == pytest.approx(math.log(exact), rel=1e-6)


def _exact_fisher(treated: int, control: int, events: int, observed: int, psi: int) -> Fraction:
    support = range(max(0, events - control), min(events, treated) + 1)
    total = sum(math.comb(treated, y) * math.comb(control, events - y) * psi**y for y in support)
    mass = math.comb(treated, observed) * math.comb(control, events - observed) * psi**observed
    return Fraction(mass, total)


def test_the_alert_url_is_shown_redacted() -> None:
    from sidecar.core.guard_config import redacted

    config = GuardConfig.from_json({"alert_url": "https://u:p@hooks.slack.com/services/T/B/x"})
    assert config.alert_url == "https://u:p@hooks.slack.com/services/T/B/x"
    assert redacted(config.alert_url) == "https://hooks.slack.com/…"
    assert redacted(None) is None
