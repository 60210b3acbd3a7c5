"""Always-valid sequential tests: the guard may look every second without inflating false trips.

A fixed-sample test run every second over growing data rejects a true null far more often
than its level (Armitage, McPherson & Rowe 1969). The tests here are *test martingales*: a
nonnegative process with expectation at most 1 under the null, so by Ville's inequality
(Ville 1939; see Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Ann. Statist. 2021, Lemma 1) the chance it *ever*
reaches ``1/alpha``, at any number of looks, over any duration, is at most ``alpha``.

Each test is a mixture of Wald likelihood ratios (Wald, "Sequential tests of statistical
hypotheses", 1945) over a fixed grid of alternatives, with equal weights: the mixture SPRT
of Robbins (1970, "Statistical methods related to the law of the iterated logarithm") as
used for continuous A/B monitoring by Johari, Koomen, Pekelis & Walsh, "Always valid
inference: continuous monitoring of A/B tests", Operations Research 2022. A mixture of
martingales is a martingale; against a one-sided composite null every component is a
supermartingale (the families used have monotone likelihood ratio), so the level holds for
the whole null, not just its boundary. A discrete grid (not a conjugate prior) keeps the
update to a handful of float additions per look; the cost of spreading the prior weight over
``K`` alternatives is at most ``log K`` nats of evidence.

Pure functions and small value classes: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def log_mean_exp(values: Sequence[float]) -> float:
    """``log(mean(exp(v)))`` without overflow: the log of an equal-weight mixture."""
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_log_likelihood_ratio(
    treated: int,
    treated_events: int,
    control: int,
    control_events: int,
    odds: Sequence[float],
    null_odds: float,
) -> list[float]:
    """Per alternative odds ratio: log P(treated_events | margins; psi) / P(... ; psi0).

    Given both group sizes and the total number of events, the events in the treated group
    follow Fisher's noncentral hypergeometric law with the odds ratio ``psi`` as its only
    parameter (Fisher 1935; Cornfield 1956): the control group's own rate – the nuisance –
    drops out. Conditioning each look on its own margins makes the product over looks a
    martingale under ``psi0`` whatever the control rate does over time (the stratified
    conditional likelihood of the Mantel–Haenszel setting, one stratum per look).
    """
    events = treated_events + control_events
    if events == 0 or treated == 0 or control == 0:
        return [0.0] * len(odds)
    low, high = max(0, events - control), min(events, treated)
    if low == high:  # the margins decide it: no information on psi
        return [0.0] * len(odds)
    log_weights = [
        _log_choose(treated, y) + _log_choose(control, events - y) for y in range(low, high + 1)
    ]
    top = max(log_weights)
    weights = [math.exp(w - top) for w in log_weights]

    largest = max(max(odds), null_odds)
    in_range = (high - low) * math.log(max(largest, 1.0 / largest)) < 600  # float64 safe

    def log_normaliser(psi: float) -> float:
        # sum over the support of C(n1, y) C(n0, k - y) psi^y, scaled by psi^low and e^top
        if not in_range:
            log_psi = math.log(psi)
            return log_mean_exp([w + i * log_psi for i, w in enumerate(log_weights)]) + (
                math.log(len(log_weights))
            )
        total, power = 0.0, 1.0
        for weight in weights:
            total += weight * power
            power *= psi
        return math.log(total)

    # log P_psi(x) = x log psi - log(sum) up to terms that cancel in the ratio
    observed = treated_events - low
    null_part = observed * math.log(null_odds) - log_normaliser(null_odds)
    return [observed * math.log(psi) - log_normaliser(psi) - null_part for psi in odds]


def bernoulli_log_likelihood_ratio(
    trials: int, successes: int, rates: Sequence[float], null_rate: float
) -> list[float]:
    """Per alternative rate: log of Wald's Bernoulli likelihood ratio against ``null_rate``."""
    failures = trials - successes
    return [
        successes * math.log(rate / null_rate)
        + failures * math.log((1.0 - rate) / (1.0 - null_rate))
        for rate in rates
    ]


@dataclass
class MixtureTest:
    """A mixture SPRT, restarted when the evidence turns clearly against the alternative.

    A single mixture SPRT from the first request is useless for a regression that starts
    late: thirty healthy minutes bank tens of nats *against* every alternative, which the
    regression must first pay back. So when the evidence falls to ``-restart_below`` nats
    the components are reset to 0 and a fresh test (run ``run``) begins – Lorden's view of
    the CUSUM as repeated one-sided SPRTs (Lorden 1971, "Procedures for reacting to a
    change in distribution", Ann. Math. Statist. 42). Each run is a test martingale
    started at 1, so by Ville's inequality run ``k`` falsely reaches its threshold with
    probability at most ``alpha_k``; spending ``alpha_k = alpha / (k (k + 1))`` (which sums
    to ``alpha``) keeps the whole sequence of runs at level ``alpha``, for any duration.
    The price is ``log(k (k + 1))`` more nats needed in the ``k``-th run: restarts are
    rare (the evidence must fall ``restart_below`` nats first), a dozen in a healthy
    half-hour at the issue's rates.

    ``evidence`` is the log of the mixture; ``distance`` how many nats it still lacks.
    """

    alpha: float
    size: int
    restart_below: float | None = None
    run: int = 1
    log_ratios: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.log_ratios:
            self.log_ratios = [0.0] * self.size

    @property
    def threshold(self) -> float:
        return math.log(self.run * (self.run + 1) / self.alpha)

    def add(self, step: Sequence[float]) -> bool:
        """Multiply in one look's likelihood ratios; True when this look restarted the test."""
        ratios = self.log_ratios
        for index, value in enumerate(step):
            ratios[index] += value
        if (
            self.restart_below is not None
            # the mean of the exps is at least the largest over size: a cheap "not yet"
            and max(ratios) <= math.log(self.size) - self.restart_below
            and self.evidence <= -self.restart_below
        ):
            self.log_ratios = [0.0] * self.size
            self.run += 1
            return True
        return False

    @property
    def evidence(self) -> float:
        return log_mean_exp(self.log_ratios)

    @property
    def rejected(self) -> bool:
        # the mixture is a mean, never above its largest component: a cheap early "no"
        return max(self.log_ratios) >= self.threshold and self.evidence >= self.threshold

    @property
    def distance(self) -> float:
        return max(0.0, self.threshold - self.evidence)


def lower_tail_rejects(
    trials: int, successes: int, null_rate: float, fractions: Sequence[float], alpha: float
) -> bool:
    """Mixture SPRT of ``rate >= null_rate`` against ``rate = null_rate * f`` (f < 1).

    Rejection is monotone in ``successes`` (fewer successes, more evidence), which the
    quantile bound in :mod:`sidecar.core.guard` relies on.
    """
    rates = [null_rate * f for f in fractions]
    ratios = bernoulli_log_likelihood_ratio(trials, successes, rates, null_rate)
    return log_mean_exp(ratios) >= math.log(1.0 / alpha)
