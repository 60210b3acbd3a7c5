"""The guard's decision: is the canary clearly worse than the old version, right now?

One :class:`GuardState` per upstream is fed one :class:`Look` per evaluation window (the
per-variant counts the http-log ingest tallied in that window) and answers a
:class:`Verdict`. Pure: the caller owns the clock and the I/O.

What is statistically possible (the issue's rates: 200 req/s, 2.5 % canary, 2.5 % baseline,
baseline 5xx 0.5 %): 5 canary and 5 baseline requests a second.

- Against the baseline alone nothing can be proved in 10 s: 50 baseline requests with no
  5xx (the usual case at 0.5 %) only bound its rate below ``-ln(alpha)/50`` = 10.6 % at
  alpha 0.005 (``(1-p)^50 >= alpha``), and a 30 % canary gives at its 1st percentile 7 5xx
  of 40 requests by second 8, whose lower bound at the same alpha is ~5 % (Clopper–
  Pearson): no test of any kind separates them at 99 %. Hence ``reference=baseline+stable``
  (default): stable runs the same version as the baseline, and 195 requests a second bound
  a 0.5 % rate to ~1 % within 10 s.
- P99 latency has the same limit, sharper: proving that a distribution's P99 lies below a
  value needs at least ``ln(alpha)/ln(0.99)`` = 527 requests (alpha 0.005) even when none
  exceeds it – 105 s of baseline traffic; the pooled reference has them in 3 s.

- A regression that starts late costs more evidence than one present from the start: not
  knowing when a change begins, a detector whose false alarms stay below ``alpha`` over a
  horizon needs about ``log(horizon / alpha)`` nats (Lorden 1971), here ~13 instead of
  ~5.3. What matters is that a healthy past costs nothing more. Both tests are mixture
  Shiryaev–Roberts detectors (:class:`~sidecar.core.sequential.ShiryaevRobertsTest`):
  they sum the likelihood ratio of every candidate start of the regression, so the
  candidate "it started at look s" carries no healthy looks. The bar, from Ville's
  inequality on ``R(n) - n + E`` (Pollak 1985's bound, per epoch of looks): the 5xx test
  trips at ``log((r + 1800) / (0.9 * alpha/2))`` = 13.1 nats over its first 1,800
  informative looks (``r`` = 450, the SR-r head start; seconds with no 5xx at all are no
  looks for it); a canary broken from its first look needs ``log(5 / (0.9 * alpha/2))``
  = 7.0. The alternatives' mixture costs at most ``log 4`` = 1.4 nats more; knowing
  neither the reference's 5xx ratio (Fisher's law conditions it away) nor the effect size
  nor the change point, that is ~1.8 nats above the oracle CUSUM below.

  Measured (seeded, ``tests/unit/core/test_guard_simulation.py``'s traffic, seconds from
  the regression's start to the trip, p50/p90/p99): 30 % 5xx from the canary's start
  5/6/8 s, 1000/1000 within 10 s (95 % lower bound 99.70 %; the restarted mixture SPRT
  before: 4/6/8 s, 300/300); 300 s into the ramp 5/7/10 s, 990/1000 within 10 s (point
  99.0 %, lower bound 98.3 %: the issue's 99 % as a point estimate, not provable at 95 %
  confidence from 1,000 runs; before: 7/11/16 s, 260/300 = 86.7 %); 5 % 5xx from the
  start 30/61/107 s and 300 s in 49/78/100 s, 100/100 within 120 s each (before: 29/54/86
  and 53/102/159 s, 95/100 mid-ramp); latency x3 from the start 12/18/23 s, 1497/1500
  within 30 s (before 12/18/25 s) and 300 s in 5/8/12 s (before 6/11/13 s); A/A 30-minute
  ramps: 0/300 tripped (95 % upper bound 0.99 %). For comparison (``tests/unit/core/
  test_guard_oracle.py``, 3,000 runs each, 5xx budget 0.005): an oracle knowing the
  change point and both 5xx ratios (SPRT from the change, 5.3 nats) trips within 10 s in
  2,997/3,000 runs (median 2 s, p99 7 s); Page's CUSUM knowing both ratios but not the
  change point (12.8 nats) in 2,991/3,000 (median 3 s, p99 9 s).

The 5xx test: per look, given the canary's and the reference's request counts and the total
5xx, the canary's 5xx follow Fisher's noncentral hypergeometric law in the odds ratio alone
(:func:`~sidecar.core.sequential.fisher_log_likelihood_ratio`): the reference's own rate,
which drifts with the time of day, drops out. A mixture over odds ratios
``errors_ratio * (2, 5, 15, 50)`` tests "odds ratio <= errors_ratio" (an odds ratio: at rates
of a few percent it is within a few percent of the ratio of the rates).

The P99 test, from the histograms' buckets (upper bounds ``bounds``, ``inf`` last):
``U`` is the smallest bucket bound for which "more than 1 % of reference requests are
slower" is rejected (a lower-tail mixture SPRT on the count above it; the count is monotone
in the bound and so is the test, so ``P(U < true P99) <= alpha``, and ``U`` only ever
decreases). Then each canary request slower than ``p99_ratio * U`` (counted from the first
bucket whose lower bound reaches it) is a success in a Bernoulli test of "at most 1 %"; under
"canary P99 <= p99_ratio * reference P99" its rate is at most 1 % whenever ``U`` is valid. The
bucket layout makes both roundings upward (conservative): ``U`` is at most one bucket step
(x1.34 between 3 ms and 10 s, ``sidecar.gateway.metrics``) above the true P99 and the
threshold another step above ``p99_ratio * U``, so the test detects a true ratio above
``p99_ratio`` times at most 1.34^2 = 1.8 – and never trips below ``p99_ratio``. The P99
estimate shown is the bucket holding the 99th-percentile request, interpolated like
``histogram_quantile``; the true value lies within that bucket, so within x1.34 of it.

False trips: the 5xx test has ``alpha/2``, the latency pair ``alpha/4`` each, so at most
``alpha`` in all over the canary's whole life: each test spends ``0.9`` of its share on its
first ``HORIZON_LOOKS`` looks (a 30-minute ramp at a look a second) and the rest over
doubling epochs after (:func:`~sidecar.core.sequential.epoch_alpha`): the 5xx bar is 13.1
nats up to look 1,800, 16.6 up to 3,600, then 18.3, 19.7, 20.9 (a canary judged for hours
is judged more slowly, the price of a budget spent mostly on the first half-hour); the
simulations in ``tests/unit/core/test_guard_simulation.py``
measure the 30-minute A/A rate. The bound is Ville's inequality, not a calibration: it
holds at any traffic, for any reference rate.

Several replicas each ingest a random part of Kong's batches: each replica's guard sees a
random sample of the requests, so with ``r`` replicas each sees about ``1/r`` of the
evidence per second and detection takes about ``r`` times longer (the evidence needed is
fixed, it arrives ``r`` times slower); false trips stay bounded per replica, so at most
``r * alpha`` for the fleet.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import add
from typing import Any

from sidecar.core.guard_config import GuardConfig
from sidecar.core.sequential import (
    ShiryaevRobertsTest,
    bernoulli_log_likelihood_ratio,
    fisher_log_likelihood_ratio,
    lower_tail_rejects,
)

QUANTILE = 0.99
TAIL = 1.0 - QUANTILE
ODDS_MULTIPLIERS = (2.0, 5.0, 15.0, 50.0)
TAIL_MULTIPLIERS = (2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
REFERENCE_FRACTIONS = (0.5, 0.25, 0.1, 0.03)
HORIZON_LOOKS = 1800  # looks the first epoch's bar covers: a 30-minute ramp, a look a second
HEAD_START = HORIZON_LOOKS / 4  # a fifth of the weight on "broken from the first look"


@dataclass(frozen=True)
class VariantLook:
    """One variant's requests in one window: count, 5xx, latency per bucket (not cumulative)."""

    requests: int = 0
    errors: int = 0
    latency: Sequence[int] = ()


@dataclass(frozen=True)
class Look:
    """One evaluation window: what each variant got, and when the window ended."""

    at: float
    variants: Mapping[str, VariantLook]
    canary_expected: bool = True


@dataclass(frozen=True)
class Verdict:
    """``collecting`` (too few requests), ``ok``, ``no_canary_traffic`` or ``tripped``."""

    status: str
    metric: str | None = None
    message: str = ""

    @property
    def tripped(self) -> bool:
        return self.status == "tripped"


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    latency: list[int] = field(default_factory=list)

    def add(self, look: VariantLook) -> None:
        self.requests += look.requests
        self.errors += look.errors
        if look.latency:
            self.latency = (
                list(map(add, self.latency, look.latency)) if self.latency else list(look.latency)
            )

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass
class ErrorsRun:
    """Page's CUSUM for one alternative and the 5xx figures of its current excursion."""

    cusum: float = 0.0
    canary: Totals = field(default_factory=Totals)
    reference: Totals = field(default_factory=Totals)

    def add(self, log_ratio: float, canary: VariantLook, reference: VariantLook) -> None:
        if self.cusum + log_ratio <= 0.0:
            self.cusum, self.canary, self.reference = 0.0, Totals(), Totals()
            return
        self.cusum += log_ratio
        self.canary.add(VariantLook(canary.requests, canary.errors))
        self.reference.add(VariantLook(reference.requests, reference.errors))


def p99_estimate(counts: Sequence[int], bounds: Sequence[float]) -> float | None:
    """``histogram_quantile(0.99)``: linear inside the bucket holding the 99th percentile."""
    total = sum(counts)
    if not total:
        return None
    rank = QUANTILE * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = bounds[index - 1] if index else 0.0
            high = bounds[index]
            if math.isinf(high):
                return low
            return low + (high - low) * (rank - seen) / count
        seen += count
    return bounds[-2]


class GuardState:
    """The guard of one upstream's canary: accumulated tests and totals."""

    def __init__(self, config: GuardConfig, bounds: Sequence[float], started: float) -> None:
        self.config = config
        self.bounds = tuple(bounds)
        self.started = started
        alpha = config.alpha
        self.odds = [config.errors_ratio * m for m in ODDS_MULTIPLIERS]
        self.errors_test = ShiryaevRobertsTest(alpha / 2, len(self.odds), HORIZON_LOOKS, HEAD_START)
        self.tail_rates = [min(TAIL * m, 0.99) for m in TAIL_MULTIPLIERS]
        self.latency_test = ShiryaevRobertsTest(
            alpha / 4, len(self.tail_rates), HORIZON_LOOKS, HEAD_START
        )
        self.reference_alpha = alpha / 4
        self.reference_bound: int | None = None  # index into bounds of U
        self.canary = Totals()
        self.reference = Totals()
        # per odds ratio, Page's CUSUM (max(0, sum of its log ratios)) and the 5xx figures
        # since it last stood at 0: the stretch most likely to hold the regression, so the
        # effect floor (errors_increase) is judged on the data that made the evidence, not
        # diluted by healthy minutes before
        self.errors_runs = [ErrorsRun() for _ in self.odds]
        self.last_canary_at = started
        self.verdict = Verdict("collecting")

    def _reference_look(self, look: Look) -> VariantLook:
        names = (
            ("baseline", "stable") if self.config.reference == "baseline+stable" else ("baseline",)
        )
        parts = [look.variants[n] for n in names if n in look.variants]
        latency = [0] * len(self.bounds)
        for part in parts:
            if part.latency:
                latency = list(map(add, latency, part.latency))
        return VariantLook(sum(p.requests for p in parts), sum(p.errors for p in parts), latency)

    def _canary_slow(self, canary: VariantLook) -> int:
        """Canary requests in buckets wholly above ``p99_ratio * U`` (predictable: old U)."""
        assert self.reference_bound is not None
        threshold = self.config.p99_ratio * self.bounds[self.reference_bound]
        first = bisect_left(self.bounds, threshold) + 1
        return sum(canary.latency[first:])

    def _lower_reference_bound(self) -> None:
        counts = self.reference.latency
        if not counts:
            return
        total = self.reference.requests
        index = len(self.bounds) - 2 if self.reference_bound is None else self.reference_bound - 1
        above = sum(counts[index + 1 :])
        while index >= 0:
            if not lower_tail_rejects(
                total, above, TAIL, REFERENCE_FRACTIONS, self.reference_alpha
            ):
                break
            self.reference_bound = index
            above += counts[index]
            index -= 1

    def adopt(self, verdict: Verdict) -> None:
        """Another process's verdict on the same arming (a trip it recorded in Kong): this
        guard stops judging too."""
        self.verdict = verdict

    def observe(self, look: Look) -> Verdict:
        """Fold one window in and decide; a tripped guard stays tripped."""
        if self.verdict.tripped:
            return self.verdict
        canary = look.variants.get("canary", VariantLook())
        reference = self._reference_look(look)
        if canary.requests and reference.requests:
            step = fisher_log_likelihood_ratio(
                canary.requests, canary.errors, reference.requests, reference.errors,
                self.odds, self.config.errors_ratio,
            )  # fmt: skip
            self.errors_test.add(step)
            for errors_run, value in zip(self.errors_runs, step, strict=True):
                errors_run.add(value, canary, reference)
        if self.reference_bound is not None and canary.requests and canary.latency:
            slow = self._canary_slow(canary)
            self.latency_test.add(
                bernoulli_log_likelihood_ratio(canary.requests, slow, self.tail_rates, TAIL)
            )
        self.canary.add(canary)
        self.reference.add(reference)
        self._lower_reference_bound()
        if canary.requests:
            self.last_canary_at = look.at
        self.verdict = self._decide(look)
        return self.verdict

    def _decide(self, look: Look) -> Verdict:
        config = self.config
        if look.canary_expected and look.at - self.last_canary_at >= config.no_traffic_seconds:
            message = (
                f"the canary got no requests for {look.at - self.last_canary_at:.0f} s "
                f"while its share is above 0 (reference: {self.reference.requests} requests)"
            )
            status = "tripped" if config.trip_on_no_traffic else "no_canary_traffic"
            return Verdict(status, "traffic", message)
        if min(self.canary.requests, self.reference.requests) < config.min_requests:
            return Verdict("collecting")
        best = max(
            range(len(self.odds)), key=lambda j: self.errors_test.log_statistics[j]
        )  # the alternative carrying the evidence
        canary, reference = self.errors_runs[best].canary, self.errors_runs[best].reference
        canary_ratio = canary.error_ratio or 0.0
        reference_ratio = reference.error_ratio or 0.0
        if (
            self.errors_test.rejected
            and (canary_ratio - reference_ratio) * 100 >= config.errors_increase
        ):
            return Verdict(
                "tripped",
                "5xx",
                f"5xx ratio canary {canary_ratio:.2%} ({canary.errors}/"
                f"{canary.requests}) vs {config.reference} {reference_ratio:.2%} "
                f"({reference.errors}/{reference.requests}) over the last "
                f"{canary.requests} canary requests: more than "
                f"{config.errors_ratio:g}x and +{config.errors_increase:g} points at "
                f"confidence {config.confidence:g}",
            )
        if self.latency_test.rejected:
            canary_p99 = p99_estimate(self.canary.latency, self.bounds)
            reference_p99 = p99_estimate(self.reference.latency, self.bounds)
            return Verdict(
                "tripped",
                "p99_latency",
                f"P99 latency canary ~{_ms(canary_p99)} vs {config.reference} "
                f"~{_ms(reference_p99)} ({self.canary.requests} vs "
                f"{self.reference.requests} requests): more than {config.p99_ratio:g}x at "
                f"confidence {config.confidence:g}",
            )
        return Verdict("ok")

    def view(self) -> dict[str, Any]:
        """The live view for ``GET .../guard``: figures and how far each test is from a trip."""
        bound = None if self.reference_bound is None else self.bounds[self.reference_bound]
        return {
            "status": self.verdict.status,
            "metric": self.verdict.metric,
            "message": self.verdict.message,
            "variants": {
                name: {
                    "requests": totals.requests,
                    "errors_5xx": totals.errors,
                    "error_ratio": totals.error_ratio,
                    "p99_ms": p99_estimate(totals.latency, self.bounds),
                }
                for name, totals in (("canary", self.canary), ("reference", self.reference))
            },
            "tests": {
                "5xx": _test_view(self.errors_test),
                "p99_latency": {
                    **_test_view(self.latency_test),
                    "reference_p99_upper_bound_ms": bound,
                },
            },
        }


EVIDENCE_FLOOR = -100.0  # nats shown for "no evidence yet" (log 0) in the JSON view


def _test_view(test: ShiryaevRobertsTest) -> dict[str, float | bool]:
    return {
        "evidence": round(max(test.evidence, EVIDENCE_FLOOR), 3),
        "threshold": round(test.threshold, 3),
        "distance": round(test.distance, 3),
        "rejected": test.rejected,
    }


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"
