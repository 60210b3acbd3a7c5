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

    def log_normaliser(psi: float) -> float:
        log_psi = math.log(psi)
        terms = [w + (low + i) * log_psi for i, w in enumerate(log_weights)]
        return log_mean_exp(terms) + math.log(len(terms))

    null_part = treated_events * math.log(null_odds) - log_normaliser(null_odds)
    return [treated_events * math.log(psi) - log_normaliser(psi) - null_part for psi in odds]


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
    """Accumulated log likelihood ratios of one mixture SPRT; rejects at ``log(1/alpha)``.

    ``evidence`` is the log of the mixture; ``distance`` how many nats it still lacks.
    """

    alpha: float
    size: int
    floor: float | None = None
    log_ratios: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.log_ratios:
            self.log_ratios = [0.0] * self.size

    @property
    def threshold(self) -> float:
        return math.log(1.0 / self.alpha)

    def add(self, step: Sequence[float]) -> None:
        """Multiply in one look's likelihood ratios; with ``floor``, forget old good news.

        Without a floor the test is Robbins' mixture SPRT from the first request. With
        ``floor=0`` every component is Page's CUSUM (Page 1954, "Continuous inspection
        schemes", Biometrika 41): a long healthy history cannot bury a regression that
        starts late in a ramp, because evidence *against* a regression is not banked
        below the floor. The price: each climb from the floor is a fresh test, so the
        false-trip bound becomes ``alpha`` times the number of climbs (looks with a
        positive increment from the floor), which the guard keeps small by only letting
        the canary's own bad requests start a climb.
        """
        ratios = self.log_ratios
        floor = self.floor
        for index, value in enumerate(step):
            total = ratios[index] + value
            ratios[index] = total if floor is None or total > floor else floor

    @property
    def at_floor(self) -> bool:
        """Every component at the floor: the next climb starts a fresh run of evidence."""
        return self.floor is not None and all(r <= self.floor for r in self.log_ratios)

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
