"""Mann-Whitney confidence interval and Hodges-Lehmann estimate, as Kayenta computes them.

Port of kayenta-mannwhitney ``MannWhitney.scala`` (itself a port of R ``wilcox.test`` with
``conf.int=TRUE, correct=TRUE, exact=FALSE``) and of the ``brentDirect`` root finder in
``KayentaBrentSolver.java`` (R's ``zeroin`` with tol 1e-4, maxit 1000). Pure Python on purpose:
the judge must give the same answer on any machine, without numpy/scipy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

_DBL_EPSILON = 2.220446049250313e-16


class MannWhitneyError(ArithmeticError):
    """Raised when the interval cannot be computed (all observations tied): Kayenta's ``Error``."""


@dataclass(frozen=True)
class MannWhitneyResult:
    lower: float
    upper: float
    estimate: float


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties averaged (commons-math ``NaturalRanking``, ``TiesStrategy.AVERAGE``)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = rank
        i = j + 1
    return ranks


def wilcoxon_diff(mu: float, quantile: float, x: Sequence[float], y: Sequence[float]) -> float:
    """Standardised, continuity-corrected rank sum of ``x - mu`` vs ``y``, minus ``quantile``."""
    n_x, n_y = float(len(x)), float(len(y))
    ranks = average_ranks([v - mu for v in x] + list(y))
    dz = sum(ranks[: len(x)]) - n_x * (n_x + 1) / 2 - n_x * n_y / 2
    correction = 0.0 if dz == 0 else math.copysign(0.5, dz)
    ties = Counter(ranks).values()
    tie_sum = sum(float(t) ** 3 - t for t in ties)
    sigma = math.sqrt(
        (n_x * n_y / 12) * ((n_x + n_y + 1) - tie_sum / ((n_x + n_y) * (n_x + n_y - 1)))
    )
    if sigma == 0:
        raise MannWhitneyError("cannot compute confidence interval when all observations are tied")
    return (dz - correction) / sigma - quantile


def brent_direct(
    ax: float, bx: float, fa: float, fb: float, func: Callable[[float], float], tol: float = 1e-4
) -> float:
    """R's ``zeroin`` exactly as ``KayentaBrentSolver.brentDirect`` has it (same step rules)."""
    a, b = ax, bx
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    maxit = 1001
    while maxit > 0:
        maxit -= 1
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _DBL_EPSILON * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = func(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def mann_whitney(
    experiment: Sequence[float], control: Sequence[float], confidence: float = 0.98
) -> MannWhitneyResult:
    """Two-sided CI for the shift experiment - control and its Hodges-Lehmann estimate."""
    x, y = list(experiment), list(control)
    mu_min = min(x) - max(y)
    mu_max = max(x) - min(y)
    alpha = 1.0 - confidence

    def root(zq: float) -> float:
        f_lower = wilcoxon_diff(mu_min, zq, x, y)
        f_upper = wilcoxon_diff(mu_max, zq, x, y)
        if f_lower <= 0:
            return mu_min
        if f_upper >= 0:
            return mu_max
        return brent_direct(
            mu_min, mu_max, f_lower, f_upper, lambda mu: wilcoxon_diff(mu, zq, x, y)
        )

    z = NormalDist().inv_cdf(alpha / 2)
    lower = root(-z)
    upper = root(z)
    f0_lower = wilcoxon_diff(mu_min, 0, x, y)
    f0_upper = wilcoxon_diff(mu_max, 0, x, y)
    estimate = brent_direct(
        mu_min, mu_max, f0_lower, f0_upper, lambda mu: wilcoxon_diff(mu, 0, x, y)
    )
    return MannWhitneyResult(lower, upper, estimate)
