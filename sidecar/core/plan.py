"""Order the Admin API writes of a weight change so traffic never overshoots.

Kong applies one target write at a time, and every intermediate state serves traffic. A
variant's share is ``E_v / sum(E)`` (``E`` = weight x addresses), so raising one variant's
weight lowers every other share proportionally, and lowering it raises them. The *box* of a
change is, per variant, the interval between its old and its new share; a plan is good when
every intermediate state stays inside the box and never has total weight 0 (Kong: 503
"failure to get a peer from the ring-balancer").

Four strategies, first success wins (each result is checked by replaying it):

1. *direct*: only the necessary writes, in an order found by depth-first search;
2. *pivot*: one variant's targets first go to an intermediate weight that makes room, then
   the other variants are written (one variant at a time), then the pivot goes to its final
   weight. E.g. 100/0/0 -> 90/5/5 as (1,0,0) -> (18,1,1) is s=19, b=1, c=1, s=18: with
   s=18 the single write b=1 would give baseline 1/19 > 5 %. The same template run backwards
   (new -> old, then reversed) covers rollbacks. The pivot weight is solved exactly: each
   checkpoint state bounds it by linear inequalities.
3. *phased*, for a change to (or, reversed, from) one variant only: raise that variant's
   targets (to ``max_weight`` if need be), lower the others in rounds - a target may take
   several writes, each as large as the other variants' bounds allow - then set the final
   weights. E.g. 0/56.27/43.73 -> stable-only, where stable's one target cannot outweigh
   baseline and canary (3 x 28135 and 5 x 13119) and dropping either variant first would push
   the other past its old share. See :func:`_phased` for why it ends and how many writes.
4. *fallback*: greedy, each step the write with the smallest excursion.

Guaranteed zero excursion (property-tested in ``tests/unit/core/test_core_plan.py``):

* from anything to stable-only, with or without deletes, when some stable target with an
  address is below ``max_weight`` or only one other variant carries traffic - otherwise no
  plan is clean: every write would raise baseline's or canary's share (every address count
  1; larger counts can leave too little headroom for one weight unit, then the greedy runs);
* from stable-only to anything, under the same condition on the new weights (the reverse);
* any change in which only the stable targets change and move in one direction - the ramps
  of a pipeline with a fixed baseline:canary ratio, since :func:`compute_weights` given
  ``current`` keeps the baseline and canary weights when a scale allows it;
* any change that needs a single write.

Not always possible, whatever the order: a variant whose share is the same before and after
(its box is a point, and every single write moves every share), e.g. 90/5/5 -> 90/7/3; and
changes whose first step is already too coarse, e.g. 50/25/25 as (2,1,1) -> 40/30/30: from
the corner of the box only lowering stable keeps baseline and canary >= 25 %, and 2 -> 1 jumps
past 40 %. Those get the smallest excursion the greedy finds; see :func:`max_excursion`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import permutations

from sidecar.core.split import VARIANTS, SplitError
from sidecar.core.weights import KONG_MAX_WEIGHT, effective_totals

_DFS_BUDGET = 1500  # states the direct search may visit before trying the templates
_PHASED_MAX_PARTIAL = 200  # partial writes a phased rollback may use (see _phased)

Step = tuple[str, int]  # (target, weight)


@dataclass(frozen=True)
class Write:
    """One Admin API call: ``old=None`` creates the target, ``new=None`` deletes it."""

    target: str
    variant: str
    old: int | None
    new: int | None


@dataclass(frozen=True)
class _Box:
    """Per variant, the closed interval between its old and new share."""

    lo: Mapping[str, Fraction]
    hi: Mapping[str, Fraction]

    @classmethod
    def between(cls, start: Mapping[str, int], end: Mapping[str, int]) -> _Box:
        a, b = _shares(start), _shares(end)
        if a is None:  # nothing served before: any split on the way is an improvement
            return cls(dict.fromkeys(VARIANTS, Fraction(0)), dict.fromkeys(VARIANTS, Fraction(1)))
        if b is None:
            raise SplitError("desired", "every weight would be 0 (Kong answers 503)")
        return cls({v: min(a[v], b[v]) for v in VARIANTS}, {v: max(a[v], b[v]) for v in VARIANTS})

    def excursion(self, totals: Mapping[str, int]) -> Fraction:
        shares = _shares(totals)
        if shares is None:
            return Fraction(1)
        return max(
            max(Fraction(0), self.lo[v] - shares[v], shares[v] - self.hi[v]) for v in VARIANTS
        )

    def inside(self, totals: Mapping[str, int]) -> bool:
        grand = sum(totals.values())
        if grand <= 0:
            return False
        return all(self.lo[v] * grand <= totals[v] <= self.hi[v] * grand for v in VARIANTS)


def _shares(totals: Mapping[str, int]) -> dict[str, Fraction] | None:
    grand = sum(totals.values())
    if grand == 0:
        return None
    return {v: Fraction(totals.get(v, 0), grand) for v in VARIANTS}


def plan_writes(
    current: Mapping[str, int],
    desired: Mapping[str, int],
    variant_of: Mapping[str, str],
    *,
    deletes: Collection[str] = (),
    address_counts: Mapping[str, int] | None = None,
    max_weight: int = KONG_MAX_WEIGHT,
) -> list[Write]:
    """The writes, in order, that take Kong from ``current`` to ``desired``.

    Targets only in ``desired`` are created (``old=None``); targets in ``deletes`` are first
    drained to 0 with everything else and deleted last; targets only in ``current`` and not in
    ``deletes`` are left alone. The final upstream must keep a positive total weight.
    """
    counts = dict(address_counts or {})
    targets = list(dict.fromkeys([*current, *desired]))
    for target in targets:
        if variant_of.get(target) not in VARIANTS:
            raise SplitError(
                f"targets.{target}", f"has no known variant: {variant_of.get(target)!r}"
            )
    for name, weights in (("current", current), ("desired", desired)):
        for target, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise SplitError(f"{name}.{target}", "weight must be an integer")
            if not 0 <= weight <= max_weight:
                raise SplitError(f"{name}.{target}", f"weight must be between 0 and {max_weight}")
    removed = [t for t in dict.fromkeys(deletes) if t in current]
    for target in deletes:
        if desired.get(target, 0) != 0:
            raise SplitError(f"desired.{target}", "a target to delete must have weight 0")
    start = {t: current.get(t, 0) for t in targets}
    end = {t: 0 if t in deletes else desired.get(t, current.get(t, 0)) for t in targets}
    kept = [t for t in targets if t not in removed]
    if sum(end[t] * counts.get(t, 1) for t in kept) <= 0:
        raise SplitError("desired", "the upstream would be left without traffic (Kong answers 503)")

    steps = _plan(start, end, variant_of, counts, max_weight)

    writes: list[Write] = []
    state: dict[str, int] = dict(current)
    for target in targets:  # weight-0 creates change no share: do them first
        untouched = not any(t == target for t, _ in steps)
        if target not in current and end[target] == 0 and target not in deletes and untouched:
            writes.append(Write(target, variant_of[target], None, 0))
            state[target] = 0
    for target, weight in steps:
        writes.append(Write(target, variant_of[target], state.get(target), weight))
        state[target] = weight
    for target in removed:
        writes.append(Write(target, variant_of[target], state[target], None))
        del state[target]
    return writes


def max_excursion(
    current: Mapping[str, int],
    writes: Sequence[Write],
    variant_of: Mapping[str, str],
    address_counts: Mapping[str, int] | None = None,
) -> Fraction:
    """How far (as a fraction of 1) any state after a write leaves the box; 1 if all-zero.

    Replays ``writes`` and refuses a write whose ``old`` does not match the replayed state, so
    a test cannot check a plan against the wrong starting point.
    """
    state = dict(current)
    states: list[dict[str, int]] = []
    for write in writes:
        if state.get(write.target) != write.old:
            raise ValueError(
                f"write {write} expects {write.old}, replay has {state.get(write.target)}"
            )
        if write.new is None:
            del state[write.target]
        else:
            state[write.target] = write.new
        states.append(dict(state))
    if not states:
        return Fraction(0)
    box = _Box(*_box_bounds(current, state, variant_of, address_counts))
    return max(box.excursion(effective_totals(s, variant_of, address_counts)) for s in states)


def _box_bounds(
    start: Mapping[str, int],
    end: Mapping[str, int],
    variant_of: Mapping[str, str],
    counts: Mapping[str, int] | None,
) -> tuple[Mapping[str, Fraction], Mapping[str, Fraction]]:
    box = _Box.between(
        effective_totals(start, variant_of, counts), effective_totals(end, variant_of, counts)
    )
    return box.lo, box.hi


class _Problem:
    """A planning problem on full weight vectors (absent target = weight 0)."""

    def __init__(
        self,
        start: Mapping[str, int],
        end: Mapping[str, int],
        variant_of: Mapping[str, str],
        counts: Mapping[str, int],
        max_weight: int,
    ) -> None:
        self.start = dict(start)
        self.end = dict(end)
        self.variant_of = variant_of
        self.counts = counts
        self.max_weight = max_weight
        self.box = _Box.between(self.totals(start), self.totals(end))
        self.by_variant = {v: [t for t in start if variant_of[t] == v] for v in VARIANTS}

    def count(self, target: str) -> int:
        return self.counts.get(target, 1)

    def totals(self, weights: Mapping[str, int]) -> dict[str, int]:
        return effective_totals(weights, self.variant_of, self.counts)

    def excursion_of(self, steps: Sequence[Step]) -> Fraction:
        """Worst excursion over the states after each step; 1 if the plan does not land."""
        state = dict(self.start)
        totals = self.totals(state)
        worst = Fraction(0)
        for target, weight in steps:
            delta = (weight - state[target]) * self.count(target)
            totals[self.variant_of[target]] += delta
            state[target] = weight
            worst = max(worst, self.box.excursion(totals))
        return worst if state == self.end else Fraction(1)


def _plan(
    start: Mapping[str, int],
    end: Mapping[str, int],
    variant_of: Mapping[str, str],
    counts: Mapping[str, int],
    max_weight: int,
) -> list[Step]:
    problem = _Problem(start, end, variant_of, counts, max_weight)
    pending = [t for t in start if start[t] != end[t]]
    if not pending:
        return []
    direct = _direct(problem, pending)
    if direct is not None:
        return direct
    pivoted = [s for s in _pivot_plans(problem) if problem.excursion_of(s) == 0]
    if pivoted:
        return min(pivoted, key=len)
    phased = [s for s in _phased_plans(problem) if problem.excursion_of(s) == 0]
    if phased:
        return min(phased, key=len)
    return _greedy(problem, pending)


def _direct(problem: _Problem, pending: Sequence[str]) -> list[Step] | None:
    """Depth-first search over orders of the necessary writes, memoised on the done set."""
    # Raises before lowers keeps the total away from 0 and tends to find a path first.
    order = sorted(pending, key=lambda t: problem.end[t] < problem.start[t])
    failed: set[frozenset[str]] = set()
    visited = 0

    def search(done: frozenset[str], totals: dict[str, int]) -> list[str] | None:
        nonlocal visited
        if len(done) == len(order):
            return []
        if done in failed or visited >= _DFS_BUDGET:
            return None
        visited += 1
        for target in order:
            if target in done:
                continue
            variant = problem.variant_of[target]
            delta = (problem.end[target] - problem.start[target]) * problem.count(target)
            totals[variant] += delta
            if problem.box.inside(totals):
                rest = search(done | {target}, totals)
                if rest is not None:
                    totals[variant] -= delta
                    return [target, *rest]
            totals[variant] -= delta
        failed.add(done)
        return None

    found = search(frozenset(), problem.totals(problem.start))
    if found is None:
        return None
    return [(t, problem.end[t]) for t in found]


def _pivot_plans(problem: _Problem) -> Iterator[list[Step]]:
    """Candidate plans 'pivot to X, others, pivot to final', forwards and reversed."""
    for forward in (True, False):
        a, b = (problem.start, problem.end) if forward else (problem.end, problem.start)
        for pivot in VARIANTS:
            if not problem.by_variant[pivot]:
                continue
            others = [
                v
                for v in VARIANTS
                if v != pivot and any(a[t] != b[t] for t in problem.by_variant[v])
            ]
            for order in permutations(others):
                for downs_first in (True, False):
                    for steps in _pivot_template(problem, a, b, pivot, order, downs_first):
                        yield steps if forward else _reversed(a, steps)


def _pivot_template(
    problem: _Problem,
    a: Mapping[str, int],
    b: Mapping[str, int],
    pivot: str,
    order: Sequence[str],
    downs_first: bool,
) -> Iterator[list[Step]]:
    middle: list[Step] = []
    rest = {v: t for v, t in problem.totals(a).items() if v != pivot}
    checkpoints = [dict(rest)]
    for variant in order:
        targets = [t for t in problem.by_variant[variant] if a[t] != b[t]]
        downs = [t for t in targets if b[t] < a[t]]
        ups = [t for t in targets if b[t] > a[t]]
        for batch in (downs, ups) if downs_first else (ups, downs):
            if not batch:
                continue
            for target in batch:
                rest[variant] += (b[target] - a[target]) * problem.count(target)
                middle.append((target, b[target]))
            checkpoints.append(dict(rest))
    bounds = _pivot_bounds(problem, pivot, checkpoints)
    if bounds is None:
        return
    low, high = bounds
    pivots = problem.by_variant[pivot]
    for mode in ("up-down", "down-up", "down-down", "up-up"):
        ranges = _mode_ranges(mode, pivots, a, b, problem.max_weight)
        if ranges is None:
            continue
        floor = sum(lo * problem.count(t) for t, (lo, _) in ranges.items())
        ceiling = sum(hi * problem.count(t) for t, (_, hi) in ranges.items())
        y_low = max(low, floor)
        y_high = ceiling if high is None else min(high, ceiling)
        if y_low > y_high:
            continue
        for prefer in (b, a):
            wanted = sum(prefer[t] * problem.count(t) for t in pivots)
            y = min(max(wanted, y_low), y_high)
            x = _realise(problem, ranges, prefer, y, y_low, y_high)
            if x is None:
                continue
            first = [(t, x[t]) for t in pivots if x[t] != a[t]]
            last = [(t, b[t]) for t in pivots if x[t] != b[t]]
            yield [*first, *middle, *last]


def _pivot_bounds(
    problem: _Problem, pivot: str, checkpoints: Sequence[Mapping[str, int]]
) -> tuple[int, int | None] | None:
    """Integer range of the pivot's effective total that keeps every checkpoint in the box."""
    lo_p, hi_p = problem.box.lo[pivot], problem.box.hi[pivot]
    low: Fraction = Fraction(0)
    high: Fraction | None = None

    def cap(value: Fraction) -> None:
        nonlocal high
        high = value if high is None else min(high, value)

    for rest in checkpoints:
        others = sum(rest.values())
        if others == 0:
            low = max(low, Fraction(1))  # the pivot alone must carry traffic
        # pivot share Y/(Y+R) within [lo_p, hi_p]
        if lo_p == 1:
            if others:
                return None
        else:
            low = max(low, lo_p * others / (1 - lo_p))
        if hi_p < 1:
            cap(hi_p * others / (1 - hi_p))
        # other shares E_u/(Y+R) within [lo_u, hi_u]
        for variant, amount in rest.items():
            lo_u, hi_u = problem.box.lo[variant], problem.box.hi[variant]
            if amount == 0:
                if lo_u > 0:
                    return None
                continue
            if hi_u == 0:
                return None
            low = max(low, amount / hi_u - others)
            if lo_u > 0:
                cap(amount / lo_u - others)
    int_low = -(-low.numerator // low.denominator)
    int_high = None if high is None else high.numerator // high.denominator
    if int_high is not None and int_low > int_high:
        return None
    return int_low, int_high


def _mode_ranges(
    mode: str, pivots: Sequence[str], a: Mapping[str, int], b: Mapping[str, int], max_weight: int
) -> dict[str, tuple[int, int]] | None:
    """Per pivot target, the weights X it may take so both pivot phases move one way."""
    ranges: dict[str, tuple[int, int]] = {}
    for target in pivots:
        old, new = a[target], b[target]
        if mode == "up-down":
            ranges[target] = (max(old, new), max_weight)
        elif mode == "down-up":
            ranges[target] = (0, min(old, new))
        elif mode == "down-down":
            if new > old:
                return None
            ranges[target] = (new, old)
        else:  # up-up
            if new < old:
                return None
            ranges[target] = (old, new)
    return ranges


def _realise(
    problem: _Problem,
    ranges: Mapping[str, tuple[int, int]],
    prefer: Mapping[str, int],
    y: int,
    y_low: int,
    y_high: int,
) -> dict[str, int] | None:
    """Pivot weights inside ``ranges`` with effective total ``y`` (or the nearest that works)."""
    for distance in range(0, 64):
        for candidate in {y - distance, y + distance}:
            if not y_low <= candidate <= y_high:
                continue
            x = {t: min(max(prefer[t], lo), hi) for t, (lo, hi) in ranges.items()}
            gap = candidate - sum(x[t] * problem.count(t) for t in x)
            for target, (lo, hi) in ranges.items():
                count = problem.count(target)
                if gap == 0 or count == 0:
                    continue
                if gap > 0:
                    move = min(hi - x[target], gap // count)
                else:
                    move = -min(x[target] - lo, (-gap) // count)
                x[target] += move
                gap -= move * count
            if gap == 0:
                return x
    return None


def _phased_plans(problem: _Problem) -> Iterator[list[Step]]:
    """Rollback plans (to one variant only) in phases, forwards and reversed; see _phased."""
    for forward in (True, False):
        a, b = (problem.start, problem.end) if forward else (problem.end, problem.start)
        for raise_to_max in (False, True):
            steps = _phased(problem, a, b, raise_to_max=raise_to_max)
            if steps is not None:
                yield steps if forward else _reversed(a, steps)


def _phased(
    problem: _Problem, a: Mapping[str, int], b: Mapping[str, int], *, raise_to_max: bool
) -> list[Step] | None:
    """Steps from ``a`` to ``b``, when only one variant P carries traffic in ``b``.

    The box is then P's share in [a_P, 1] and every other variant's share in [0, a_v], and
    P's lower bound holds whenever the others' upper bounds do (the shares sum to 1).

    1. Raise P's targets to ``max(a, b)`` (or to ``max_weight``): every other share shrinks.
       This adds ``dS`` to the total and so headroom ``g_v = T - E_v / a_v >= dS`` for every
       other variant v (``T`` total, ``E_v`` v's effective total; in the box iff all g_v >= 0).
    2. Lower the other variants' targets to 0, one write at a time, each write as far as the
       headroom of the *other* non-P variant allows (lowering u by d lowers ``g_v`` by d and
       raises ``g_u`` by d (1/a_u - 1)). A write that zeroes a target is preferred; else the
       largest partial one. Two non-P variants at most, so the writes zig-zag between them.
    3. Set P's targets (and targets with no address) to their weights in ``b``: the others are
       at 0, so P has 100 % in every state, and P only goes down, so the total stays positive.

    Termination and bound, phase 2 (every address count 1; u, v the non-P variants): every
    write lowers some target by at least 1 or the loop stops, so it ends. It cannot stop early:
    ``phi = a_u g_u + a_v g_v`` never shrinks (lowering u by d adds ``d a_P``) and starts at
    ``(1 - a_P) dS >= 1 - a_P``, while both ``g < 1`` would mean ``phi < 1 - a_P``. Writes that
    zero a target number at most the non-P targets. A partial write uses up the other
    variant's headroom, so partial writes alternate, and each one (up to rounding) multiplies
    phi by ``1 + a_P / a_u >= 1 / (1 - a_P)`` and lowers its variant by the headroom:
    at most about ``log(T0 / dS) / log(1 + a_P / max(a_u, a_v))`` of them. With ``a_P = 0`` the
    headrooms instead settle at ``dS / a_u`` and ``dS / a_v``, so about ``a_u a_v T0 / dS + 2``
    suffice, with ``dS = max_weight`` x P's addresses: under 5 for 5 + 5 targets.
    For weights up to 65535 and 5 targets per variant the worst found is 60 partial writes
    (stable 65534 with 1 target; 5 + 5 others at 65535, dS = 1, a_P = 1/11); above
    ``_PHASED_MAX_PARTIAL`` partial writes, or when stuck (counts > 1), None.
    """
    count = problem.count
    before = problem.totals(a)
    after = problem.totals(b)
    live = [v for v in VARIANTS if after[v] > 0]
    grand = sum(before.values())
    if len(live) != 1 or grand == 0:
        return None
    pivot = live[0]
    state = dict(a)
    steps: list[Step] = []
    for target in problem.by_variant[pivot]:  # phase 1
        if count(target) == 0:
            continue
        level = problem.max_weight if raise_to_max else max(a[target], b[target])
        if level != state[target]:
            state[target] = level
            steps.append((target, level))
    totals = problem.totals(state)
    others = [v for v in VARIANTS if v != pivot and before[v] > 0]
    partial = 0
    while True:  # phase 2; untouched variants (before[v] == 0) stay at 0
        total = sum(totals.values())
        best: tuple[bool, int, str] | None = None
        for variant in others:
            if totals[variant] == 0:
                continue
            room = None  # effective decrease of `variant` the other variant's bound allows
            for other in others:
                if other != variant and totals[other] > 0:
                    slack = (total * before[other] - totals[other] * grand) // before[other]
                    room = slack if room is None else min(room, slack)
            for target in problem.by_variant[variant]:
                weight, per = state[target], count(target)
                if per == 0 or weight == 0:
                    continue
                down = weight if room is None else min(weight, room // per)
                if down > 0:
                    key = (down == weight, down * per, target)
                    if best is None or key[:2] > best[:2]:
                        best = key
        if best is None:
            break
        full, amount, target = best
        partial += not full
        if partial > _PHASED_MAX_PARTIAL:
            return None
        state[target] -= amount // count(target)
        totals[problem.variant_of[target]] -= amount
        steps.append((target, state[target]))
    if any(totals[v] for v in others):
        return None  # stuck: headroom below one address count
    for target in state:  # phase 3
        if state[target] != b[target]:
            state[target] = b[target]
            steps.append((target, b[target]))
    return steps


def _reversed(a: Mapping[str, int], steps: Sequence[Step]) -> list[Step]:
    """Steps from ``b`` back to ``a``, given the steps from ``a`` to ``b``."""
    state = dict(a)
    before: list[Step] = []
    for target, weight in steps:
        before.append((target, state[target]))
        state[target] = weight
    return before[::-1]


Scores = dict[tuple[str, int], tuple[bool, Fraction]]  # (variant, weight change) -> cost


def _greedy(problem: _Problem, pending: Sequence[str]) -> list[Step]:
    """Smallest excursion first; never a state with total 0 while another choice exists."""
    state = dict(problem.start)
    totals = problem.totals(state)
    left = list(pending)
    steps: list[Step] = []
    while left:
        # A candidate's cost depends only on its variant and weight change: with 1,000
        # targets most candidates share a few of those, so each is scored once per step.
        scored: Scores = {}

        def cost(candidate: tuple[int, str], scored: Scores = scored) -> tuple[bool, Fraction, int]:
            index, target = candidate
            variant = problem.variant_of[target]
            delta = (problem.end[target] - state[target]) * problem.count(target)
            if (variant, delta) not in scored:
                trial = dict(totals)
                trial[variant] += delta
                scored[variant, delta] = (sum(trial.values()) <= 0, problem.box.excursion(trial))
            return (*scored[variant, delta], index)

        index, best = min(enumerate(left), key=cost)
        totals[problem.variant_of[best]] += (problem.end[best] - state[best]) * problem.count(best)
        state[best] = problem.end[best]
        steps.append((best, problem.end[best]))
        del left[index]
    return steps
