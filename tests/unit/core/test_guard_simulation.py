"""Seeded simulations of the guard at the issue's rates, with the clock injected (no sleeping).

Traffic: 200 requests/s as Poisson arrivals, 95 % stable, 2.5 % baseline, 2.5 % canary;
5xx 0.5 % on the old version; latency log-normal, median 40 ms, sigma 0.4 (P99 = 2.5 x
the median, a typical web service). One look per second, per-variant counts and histogram
buckets exactly as the ingest tallies them. A run measures the seconds from the
regression's start to the trip.

Each rate is judged by a one-sided 95 % Clopper–Pearson bound on the measured proportion,
so a pass means the target holds at 95 % confidence, not just on this sample.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Sequence
from functools import cache
from itertools import accumulate

import pytest

from sidecar.core.guard import GuardState, Look, VariantLook
from sidecar.core.guard_config import GuardConfig
from sidecar.gateway.metrics import BOUNDS

RATE = 200
SHARES = {"stable": 0.95, "baseline": 0.025, "canary": 0.025}
ERROR_RATIO = 0.005
MEDIAN_MS = 40.0
SIGMA = 0.4
BUCKETS = range(len(BOUNDS))


def bucket_probabilities(median: float, sigma: float = SIGMA) -> list[float]:
    """P(latency in each bucket) for a log-normal latency."""
    cdf = [
        1.0 if math.isinf(b) else 0.5 * (1 + math.erf(math.log(b / median) / (sigma * 2**0.5)))
        for b in BOUNDS
    ]
    return [high - low for low, high in zip([0.0, *cdf[:-1]], cdf, strict=True)]


@cache
def _poisson_cdf(mean: float) -> tuple[float, ...]:
    out, term, total, k = [], math.exp(-mean), 0.0, 0
    total = term
    while total < 1 - 1e-12 and k < 4 * mean + 50:
        out.append(total)
        k += 1
        term *= mean / k
        total += term
    return tuple(out)


@cache
def _binomial_cdf(trials: int, p: float) -> tuple[float, ...]:
    out, total = [], 0.0
    for k in range(trials + 1):
        total += math.comb(trials, k) * p**k * (1 - p) ** (trials - k)
        if total >= 1 - 1e-12:
            break
        out.append(total)
    return tuple(out)


def poisson(rng: random.Random, mean: float) -> int:
    """Inverse transform on a cached table: one bisect per draw."""
    return bisect(_poisson_cdf(mean), rng.random())


def binomial(rng: random.Random, trials: int, p: float) -> int:
    return bisect(_binomial_cdf(trials, p), rng.random()) if trials else 0


class Variant:
    """One variant's traffic: a Poisson count per bucket (Poisson arrivals), 5xx binomial."""

    def __init__(self, rate: float, latency: Sequence[float], error_ratio: float) -> None:
        self.rate = rate
        self.cumulative = list(accumulate(latency))
        self.cumulative[-1] = 1.0
        self.means = [(i, rate * p) for i, p in enumerate(latency) if rate * p > 1e-9]
        self.error_ratio = error_ratio

    def look(self, rng: random.Random) -> VariantLook:
        counts = [0] * len(BOUNDS)
        if self.rate < 20:  # few requests: draw each one's bucket
            for index in rng.choices(
                BUCKETS, cum_weights=self.cumulative, k=poisson(rng, self.rate)
            ):
                counts[index] += 1
        else:  # many: independent Poisson counts per bucket (thinning of the arrivals)
            for index, mean in self.means:
                counts[index] = poisson(rng, mean)
        requests = sum(counts)
        return VariantLook(requests, binomial(rng, requests, self.error_ratio), counts)


def run(
    rng: random.Random,
    *,
    seconds: int,
    regression_at: int,
    canary_errors: float = ERROR_RATIO,
    latency_factor: float = 1.0,
    config: GuardConfig | None = None,
) -> int | None:
    """Seconds from the regression's start to the trip, None if no trip by ``seconds``."""
    healthy = bucket_probabilities(MEDIAN_MS)
    old = {v: Variant(RATE * share, healthy, ERROR_RATIO) for v, share in SHARES.items()}
    broken = Variant(
        RATE * SHARES["canary"], bucket_probabilities(MEDIAN_MS * latency_factor), canary_errors
    )
    guard = GuardState(config or GuardConfig(), BOUNDS, started=0.0)
    for second in range(1, seconds + 1):
        canary = broken if second > regression_at else old["canary"]
        looks = {"stable": old["stable"].look(rng), "baseline": old["baseline"].look(rng)}
        looks["canary"] = canary.look(rng)
        if guard.observe(Look(float(second), looks)).tripped:
            return second - regression_at
    return None


def _binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p)."""
    return sum(math.comb(trials, k) * p**k * (1 - p) ** (trials - k)
               for k in range(successes, trials + 1))  # fmt: skip


def clopper_pearson(
    successes: int, trials: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """One-sided exact bounds (lower, upper) on a proportion, each at ``confidence``."""
    alpha = 1 - confidence

    def solve(predicate) -> float:  # type: ignore[no-untyped-def]
        low, high = 0.0, 1.0
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if predicate(middle) else (low, middle)
        return (low + high) / 2

    lower = 0.0 if successes == 0 else solve(lambda p: _binomial_tail(successes, trials, p) < alpha)
    upper = (
        1.0
        if successes == trials
        else solve(lambda p: 1 - _binomial_tail(successes + 1, trials, p) > alpha)
    )
    return lower, upper


def quantiles(delays: Sequence[int | None]) -> dict[str, int | None]:
    detected = sorted(d for d in delays if d is not None)
    out: dict[str, int | None] = {"missed": len(delays) - len(detected)}
    for q in (0.5, 0.9, 0.99):
        rank = math.ceil(q * len(delays)) - 1
        out[f"p{round(q * 100)}"] = detected[rank] if rank < len(detected) else None
    return out


def test_clopper_pearson_matches_known_values() -> None:
    # 0 of 300: the classic "rule of three" upper bound 1 - 0.05**(1/300)
    assert clopper_pearson(0, 300)[1] == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-6)
    assert clopper_pearson(300, 300)[0] == pytest.approx(0.05 ** (1 / 300), rel=1e-6)
    lower, upper = clopper_pearson(5, 10)
    assert lower < 0.5 < upper


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_aa_30_minute_ramps_trip_at_most_1_percent() -> None:
    rng = random.Random(20261205)
    runs = 300
    trips = sum(run(rng, seconds=1800, regression_at=10**9) is not None for _ in range(runs))
    _, upper = clopper_pearson(trips, runs)
    assert upper <= 0.01, f"{trips}/{runs} A/A ramps tripped (95 % upper bound {upper:.2%})"


MID_RAMP = 300  # seconds of healthy canary before the regression


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "regression_at", "kwargs", "targets", "runs"),
    [
        ("5xx 30 %, broken from the start", 0, {"canary_errors": 0.30}, {10: 0.99}, 1000),
        # mid-ramp: 990/1000 within 10 s measured (the restarted mixture SPRT this replaced:
        # 86 %); not provable at 95 % confidence from 300 runs (sidecar.core.guard docstring)
        ("5xx 30 %, broken mid-ramp", MID_RAMP, {"canary_errors": 0.30}, {10: 0.97, 20: 0.99}, 300),
        ("5xx 5 % (10x), broken from the start", 0, {"canary_errors": 0.05}, {120: 0.90}, 100),
        ("5xx 5 % (10x), broken mid-ramp", MID_RAMP, {"canary_errors": 0.05}, {120: 0.90}, 150),
        ("latency x3, slow from the start", 0, {"latency_factor": 3.0}, {30: 0.99}, 1500),
        ("latency x3, slow mid-ramp", MID_RAMP, {"latency_factor": 3.0}, {30: 0.99}, 300),
    ],
)
def test_a_broken_canary_trips_in_time(
    name: str, regression_at: int, kwargs: dict, targets: dict[int, float], runs: int
) -> None:
    rng = random.Random(sum(map(ord, name)))
    horizon = max(targets)
    delays = [run(rng, seconds=regression_at + horizon, regression_at=regression_at, **kwargs)
              for _ in range(runs)]  # fmt: skip
    for within, target in targets.items():
        in_time = sum(d is not None and d <= within for d in delays)
        lower, _ = clopper_pearson(in_time, runs)
        assert lower >= target, (
            f"{name}: {in_time}/{runs} within {within} s (95 % lower bound {lower:.2%}); "
            f"{quantiles(delays)}"
        )
