"""What the best detectors reach on the issue's mid-ramp target: 30 % 5xx starting 300 s
into a ramp, trip within 10 s in at least 99 % of runs, at 5 canary requests a second and a
0.5 % 5xx ratio before, with the 5xx test's false-alarm budget (``alpha/2`` = 0.005 at the
default confidence 0.99).

The stop-11 note claimed the target unreachable ("even an oracle reaches ~97 %"). Measured
here, it is not: detectors that know more than the guard reach it, so the 86 % mid-ramp of
the guard's earlier restarted mixture SPRT was the price of its design, not a limit of the
data (the Shiryaev–Roberts guard now: 99.0 %, ``sidecar.core.guard``).

- ``oracle``: knows the change point and both 5xx ratios. From the change point on, Wald's
  SPRT of 30 % against 0.5 % per canary request, stopping at ``ln(1/alpha)`` nats (Ville's
  inequality bounds its false alarms by ``alpha``). A lower bound on the best possible
  test: the Neyman–Pearson test on the same 10 s can only do better.
- ``cusum``: knows both ratios but not the change point (Page's CUSUM, optimal for that
  problem: Lorden 1971, Moustakides 1986), one candidate start a second, stopping at
  ``ln(1800/alpha)`` nats: by the union bound over the 1,800 starts of a 30-minute ramp,
  each an SPRT bounded by Ville, its false alarms over the ramp stay below ``alpha`` (the
  ~12 nats of ``sidecar.core.guard``'s docstring). The A/A test measures it.

Both are judged by one-sided 95 % Clopper–Pearson bounds (``clopper_pearson``).
"""

from __future__ import annotations

import math
import random

import pytest

from tests.unit.core.test_guard_simulation import binomial, clopper_pearson, poisson

CANARY_RATE = 5.0  # requests a second: 2.5 % of 200
BEFORE, AFTER = 0.005, 0.30
ALPHA = 0.005  # the guard's 5xx test at confidence 0.99 (sidecar.core.guard: alpha/2)
RAMP_SECONDS = 1800
CHANGE_AT = 300
WITHIN = 10
LLR_5XX = math.log(AFTER / BEFORE)
LLR_OK = math.log((1 - AFTER) / (1 - BEFORE))


def second_llr(rng: random.Random, error_ratio: float) -> float:
    """One second of canary requests: the log-likelihood ratio 30 % vs 0.5 % they bring."""
    requests = poisson(rng, CANARY_RATE)
    errors = binomial(rng, requests, error_ratio)
    return errors * LLR_5XX + (requests - errors) * LLR_OK


def oracle_delay(rng: random.Random) -> int | None:
    """Seconds from the change to the alarm (within ``WITHIN``), None if later."""
    evidence = 0.0
    for second in range(1, WITHIN + 1):
        evidence += second_llr(rng, AFTER)
        if evidence >= math.log(1 / ALPHA):
            return second
    return None


def cusum_delay(rng: random.Random, change_at: int | None = CHANGE_AT) -> int | None:
    """Seconds from the change to the alarm (negative: a false alarm before it), None if
    no alarm within ``WITHIN`` of the change (or over the whole ramp, ``change_at=None``)."""
    threshold = math.log(RAMP_SECONDS / ALPHA)
    statistic = 0.0
    end = RAMP_SECONDS if change_at is None else change_at + WITHIN
    for second in range(1, end + 1):
        broken = change_at is not None and second > change_at
        statistic = max(0.0, statistic + second_llr(rng, AFTER if broken else BEFORE))
        if statistic >= threshold:
            return second - (change_at or 0)
    return None


def assert_meets_the_target(delay, seed: int, runs: int = 3000) -> None:  # type: ignore[no-untyped-def]
    """``delay(rng)`` trips within ``WITHIN`` s in >= 99 % of runs, at 95 % confidence (a
    false alarm before the change counts as a miss)."""
    rng = random.Random(seed)
    delays = [delay(rng) for _ in range(runs)]
    hits = sum(d is not None and 0 < d <= WITHIN for d in delays)
    lower, _ = clopper_pearson(hits, runs)
    assert lower >= 0.99, f"{hits}/{runs} within {WITHIN} s (lower {lower:.2%})"


def test_an_oracle_that_knows_the_change_point_reaches_the_mid_ramp_target() -> None:
    assert_meets_the_target(oracle_delay, 18_001)


@pytest.mark.slow
def test_a_cusum_that_knows_the_ratios_but_not_the_change_point_reaches_it_too() -> None:
    assert_meets_the_target(cusum_delay, 18_002)


@pytest.mark.slow
def test_the_cusums_false_alarms_over_a_30_minute_ramp_stay_within_the_budget() -> None:
    rng = random.Random(18_003)
    runs = 600
    alarms = sum(cusum_delay(rng, change_at=None) is not None for _ in range(runs))
    _, upper = clopper_pearson(alarms, runs)
    assert upper <= 0.01, f"{alarms}/{runs} A/A ramps alarmed (upper {upper:.2%})"
