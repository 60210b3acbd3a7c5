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

The guard's change detectors (:class:`ShiryaevRobertsTest`) are built from the same ratios,
one mixture per candidate start of a regression; their statistic is not itself a test
martingale (it grows by one candidate per look), and their bar comes from Ville's
inequality applied to ``R(n) - n`` (see the class).

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


FIRST_EPOCH_SHARE = 0.9  # of alpha, for the first ``horizon`` looks: the life of most canaries


def epoch_alpha(alpha: float, epoch: int) -> float:
    """The false-trip budget of epoch ``epoch``: ``0.9 alpha`` for the first, then
    ``0.1 alpha / (k (k + 1))``, which sums to ``alpha`` over all epochs."""
    if epoch == 0:
        return FIRST_EPOCH_SHARE * alpha
    return (1.0 - FIRST_EPOCH_SHARE) * alpha / (epoch * (epoch + 1))


def _softplus(value: float) -> float:
    """``log(1 + exp(value))`` without overflow."""
    return value + math.log1p(math.exp(-value)) if value > 0 else math.log1p(math.exp(value))


@dataclass
class ShiryaevRobertsTest:
    """A mixture Shiryaev–Roberts change detector: as quick for a change that starts late as
    for one present from the first look, without knowing when it starts or its size.

    Per alternative ``j`` (a grid of effect sizes), ``R_j`` sums the likelihood ratios of
    every candidate change point ``s`` since the first look: ``R_j(n) = sum_{s <= n}
    prod_{s <= i <= n} L_j(i)``, updated as ``R_j(n) = (1 + R_j(n-1)) L_j(n)`` (Shiryaev
    1963; Roberts 1966); the statistic is their equal-weight mean ``R`` (Lorden's
    reduction: a change detector as a family of sequential tests, one started at each
    look – Lorden 1971, "Procedures for reacting to a change in distribution", Ann. Math.
    Statist. 42 – summed here rather than maximised, which only adds evidence). A healthy
    past costs nothing: the candidate started at the regression's first look carries no
    healthy looks, unlike one test over the whole history.

    False trips (the bound of Pollak 1985, "Optimal detection of a change in
    distribution", Ann. Statist. 13, made finite-horizon): under the null each ``L_j`` has
    mean at most 1 (a martingale or, for the composite one-sided nulls used, a
    supermartingale), so ``R(n) - n`` is a supermartingale and ``R(n) - n + E`` is
    nonnegative up to look ``E``; by Ville's inequality ``P(R(n) >= A for some n <= E) <=
    E / A``. The looks are split into epochs ending at ``E_k = horizon * 2^k`` (k = 0, 1,
    ...), and epoch ``k`` trips at ``A_k = E_k / alpha_k`` with the budgets ``alpha_k`` of
    :func:`epoch_alpha`, which sum to ``alpha``: the level holds over the test's whole
    life. A look that carries no information (every ratio exactly 1) adds no candidate
    change point and is not counted: a change starting there has the same ratio as one
    starting at the next informative look.

    A head start ``R(0) = r`` (the SR-r procedure of Moustakides, Polunchenko &
    Tartakovsky 2011, "A numerical approach to performance analysis of quickest
    change-point detection procedures", Statistica Sinica 21) weighs the candidate "broken
    from the first look" ``r + 1`` times, so a canary broken from its start trips on
    ``log(A / (r + 1))`` nats rather than ``log A``; it adds ``r`` to the expected
    statistic under the null, so ``A_k = (r + E_k) / alpha_k``. With ``r = horizon / 4``
    (the guard's choice) the first candidate holds a fifth of the weight: it trips on
    ``log(5 / alpha_0)`` nats, and a late change on ``log(horizon / alpha_0) + log(5 / 4)``
    – as if the budget were split 1 : 4 between an SPRT from the start and a detector of
    late changes.

    ``evidence`` is ``log R``; ``distance`` how many nats it still lacks.
    """

    alpha: float
    size: int
    horizon: int
    head_start: float = 0.0
    looks: int = 0
    log_statistics: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.log_statistics:
            start = math.log(self.head_start) if self.head_start > 0 else -math.inf
            self.log_statistics = [start] * self.size

    @property
    def threshold(self) -> float:
        """``log A_k`` of the epoch holding the latest look (the first epoch before any)."""
        epoch = 0
        while self.looks > self.horizon << epoch:
            epoch += 1
        return math.log(
            (self.head_start + (self.horizon << epoch)) / epoch_alpha(self.alpha, epoch)
        )

    def add(self, step: Sequence[float]) -> None:
        """Fold in one look's log-likelihood ratio per alternative."""
        if not any(step):
            return
        self.looks += 1
        statistics = self.log_statistics
        for index, value in enumerate(step):
            statistics[index] = _softplus(statistics[index]) + value

    @property
    def evidence(self) -> float:
        return log_mean_exp(self.log_statistics)

    @property
    def rejected(self) -> bool:
        # the mixture is a mean, never above its largest member: a cheap early "no"
        if not self.looks:
            return False
        threshold = self.threshold
        return max(self.log_statistics) >= threshold and self.evidence >= threshold

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
