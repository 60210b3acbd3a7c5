"""Order the Admin API writes of a weight change so traffic never overshoots.

Kong applies one target write at a time, and every intermediate state serves traffic. A
variant's share is ``E_v / sum(E)`` (``E`` = weight x addresses), so raising one variant's
weight lowers every other share proportionally, and lowering it raises them. The *box* of a
change is, per variant, the interval between its old and its new share; a plan is good when
every intermediate state stays inside the box and never has total weight 0 (Kong: 503
"failure to get a peer from the ring-balancer").

Four strategies, first success wins (each result is checked by replaying it):

1. *direct*: only the necessary writes, in an order found by an iterative depth-first search
   over classes of interchangeable writes (same variant, same effective change);
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
4. *fallback*, when no strategy is excursion-free: the smallest excursion of the greedy
   (each step the write with the smallest excursion; only while it is cheap), the
   interleaved order (every variant's batch at the same pace, close to the straight line
   from old to new totals, which stays in the box) and the best order of at most six
   batches (per variant and direction; its excursion is at most "raises, then lowers").

Bounded (issue 13 item 7: 500 + 500 new targets used to recurse past Python's limit, and
480 + 480 took 15 s under the upstream's lock): for n pending writes in k classes the direct
search makes at most ``_DFS_CHECKS`` integer box checks over ``n + _DFS_BUDGET`` nodes, the
pivot tries at most 192 templates of ``O(n)``, the phased drain is ``O(n log n)`` plus
``_PHASED_MAX_PARTIAL`` scans, the greedy at most ``_GREEDY_EVALUATIONS`` scores, the other
fallbacks ``O(n log n)``. ``bench/plan.py`` measures it: for 1,000 + 1,000 targets a
pipeline's moves and rollbacks take 2-3x the time ``compute_weights`` takes for the same
upstream (~0.1 s), the worst case found ~16x (~0.5 s: 90/5/5 -> 90/7/3, fallback).

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

from bisect import bisect_left, bisect_right, insort
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from itertools import permutations

from sidecar.core.split import VARIANTS, SplitError
from sidecar.core.weights import KONG_MAX_WEIGHT, effective_totals

_DFS_BUDGET = 1500  # states the direct search may visit beyond one path's length
_DFS_CHECKS = 30_000  # box checks the direct search may make (each O(1), integers)
_GREEDY_EVALUATIONS = 20_000  # Fraction excursions the greedy may score, else batches only
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
    """Per variant, the closed interval between its old and new share.

    Each end is kept as the integer pair (amount, grand total) it came from, unreduced: the
    search checks a state against the box with integer cross-multiplications only, and
    the Fractions (``lo``, ``hi``) are made only when something needs them (the pivot
    bounds, excursions). Making and comparing six Fractions was most of a small plan's box.
    """

    lo_pairs: Mapping[str, tuple[int, int]]  # numerator, denominator > 0
    hi_pairs: Mapping[str, tuple[int, int]]

    @classmethod
    def between(cls, start: Mapping[str, int], end: Mapping[str, int]) -> _Box:
        grand_a, grand_b = sum(start.values()), sum(end.values())
        if grand_a == 0:  # nothing served before: any split on the way is an improvement
            return cls(dict.fromkeys(VARIANTS, (0, 1)), dict.fromkeys(VARIANTS, (1, 1)))
        if grand_b == 0:
            raise SplitError("desired", "every weight would be 0 (Kong answers 503)")
        lo: dict[str, tuple[int, int]] = {}
        hi: dict[str, tuple[int, int]] = {}
        for v in VARIANTS:
            a, b = (start.get(v, 0), grand_a), (end.get(v, 0), grand_b)
            lo[v], hi[v] = (a, b) if a[0] * grand_b <= b[0] * grand_a else (b, a)
        return cls(lo, hi)

    @cached_property
    def lo(self) -> dict[str, Fraction]:
        return {v: Fraction(*pair) for v, pair in self.lo_pairs.items()}

    @cached_property
    def hi(self) -> dict[str, Fraction]:
        return {v: Fraction(*pair) for v, pair in self.hi_pairs.items()}

    def excursion(self, totals: Mapping[str, int]) -> Fraction:
        grand = sum(totals.values())
        if grand <= 0:
            return Fraction(1)
        worst = Fraction(0)
        for v in VARIANTS:  # integer comparisons first: Fractions only for a variant outside
            (lo_n, lo_d), (hi_n, hi_d), amount = self.lo_pairs[v], self.hi_pairs[v], totals[v]
            if lo_n * grand > amount * lo_d:
                worst = max(worst, self.lo[v] - Fraction(amount, grand))
            elif amount * hi_d > hi_n * grand:
                worst = max(worst, Fraction(amount, grand) - self.hi[v])
        return worst

    def inside(self, totals: Mapping[str, int]) -> bool:
        grand = sum(totals.values())
        if grand <= 0:
            return False
        # lo <= total / grand <= hi, cross-multiplied: integers only (it runs per search node)
        for v in VARIANTS:
            (lo_n, lo_d), (hi_n, hi_d), amount = self.lo_pairs[v], self.hi_pairs[v], totals[v]
            if lo_n * grand > amount * lo_d:
                return False
            if amount * hi_d > hi_n * grand:
                return False
        return True


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

    The plan ends on ``desired``, or one or more writes short of it when the state there
    already gives every target the same share of traffic (Kong balances on shares, so those
    writes would move nothing): a pivot's return write is left out, e.g. a rollback from
    (38, 1, 1) is s=39, b=0, c=0 and stays there instead of writing s=38 after (but a target
    raised to ``max_weight`` still comes back down).
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
    steps = _without_restoring_tail(start, end, steps, counts, max_weight)

    writes: list[Write] = []
    state: dict[str, int] = dict(current)
    stepped = {t for t, _ in steps}
    for target in targets:  # weight-0 creates change no share: do them first
        untouched = target not in stepped
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


def _without_restoring_tail(
    start: Mapping[str, int],
    end: Mapping[str, int],
    steps: list[Step],
    counts: Mapping[str, int],
    max_weight: int,
) -> list[Step]:
    """``steps`` without the trailing writes that change no target's share of traffic.

    Never where a target would stay at ``max_weight``: a stable target left there has no
    room for the next rollback's pivot (``test_rollback_with_stable_at_the_maximum_…``)."""
    state = dict(start)
    before = []  # each step's target weight before it, to unwind the tail on one state
    for target, weight in steps:
        before.append(state[target])
        state[target] = weight
    keep = len(steps)
    while keep > 0:
        target, _ = steps[keep - 1]
        state[target] = before[keep - 1]  # the state before that step
        if max(state.values(), default=0) >= max_weight or not _same_shares(state, end, counts):
            break
        keep -= 1
    return steps[:keep]


def _same_shares(a: Mapping[str, int], b: Mapping[str, int], counts: Mapping[str, int]) -> bool:
    """Whether every target gets the same share of traffic (weight x addresses / total)."""
    total_a = sum(w * counts.get(t, 1) for t, w in a.items())
    total_b = sum(w * counts.get(t, 1) for t, w in b.items())
    if total_a == 0 or total_b == 0:
        return False
    return all(
        a.get(t, 0) * counts.get(t, 1) * total_b == b.get(t, 0) * counts.get(t, 1) * total_a
        for t in {*a, *b}
    )


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
    for write in writes:  # the final state, checking the replay
        if state.get(write.target) != write.old:
            raise ValueError(
                f"write {write} expects {write.old}, replay has {state.get(write.target)}"
            )
        if write.new is None:
            del state[write.target]
        else:
            state[write.target] = write.new
    if not writes:
        return Fraction(0)
    box = _Box.between(
        effective_totals(current, variant_of, address_counts),
        effective_totals(state, variant_of, address_counts),
    )
    counts = address_counts or {}
    totals = effective_totals(current, variant_of, address_counts)
    worst = Fraction(0)
    for write in writes:  # incrementally: a plan may have thousands of writes
        change = (write.new or 0) - (write.old or 0)
        totals[variant_of[write.target]] += change * counts.get(write.target, 1)
        worst = max(worst, box.excursion(totals))
    return worst


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

    def excursion(self, steps: Sequence[Step]) -> Fraction:
        """The worst excursion over the states after each step (1 for an all-zero state)."""
        totals = self.totals(self.start)
        state = dict(self.start)
        worst = Fraction(0)
        for target, weight in steps:
            totals[self.variant_of[target]] += (weight - state[target]) * self.count(target)
            state[target] = weight
            worst = max(worst, self.box.excursion(totals))
        return worst

    def clean(self, steps: Sequence[Step]) -> bool:
        """Whether every state after each step is in the box and the plan lands on ``end``.

        Checked at the ends of runs only: within a run of writes that move one variant one
        way, that variant's share and every other share move monotonically and the total
        too, so a run whose two ends are inside the box (an interval per share) stays
        inside. That makes checking a candidate of thousands of writes a few box checks.
        """
        state = dict(self.start)
        totals = self.totals(state)
        run: tuple[str, bool] | None = None
        for target, weight in steps:
            delta = (weight - state[target]) * self.count(target)
            variant = self.variant_of[target]
            direction = (variant, delta > 0)
            if run is not None and direction != run and not self.box.inside(totals):
                return False
            run = direction
            totals[variant] += delta
            state[target] = weight
        if run is not None and not self.box.inside(totals):
            return False
        return state == self.end


def _plan(
    start: Mapping[str, int],
    end: Mapping[str, int],
    variant_of: Mapping[str, str],
    counts: Mapping[str, int],
    max_weight: int,
) -> list[Step]:
    pending = [t for t in start if start[t] != end[t]]
    if not pending:
        return []
    if len(pending) == 1:
        # One write is the direct search's answer without searching: the state after it is
        # ``end``, one corner of the box, so it is inside (plan_writes made sure ``end``
        # serves traffic). Most ramp steps are this one write (compute_weights keeps the
        # other targets' weights); tests/unit/core/test_core_plan.py compares the two.
        return [(pending[0], end[pending[0]])]
    problem = _Problem(start, end, variant_of, counts, max_weight)
    direct = _direct(problem, pending)
    if direct is not None:
        return direct
    pivoted = [s for s in _pivot_plans(problem) if problem.clean(s)]
    if pivoted:
        return min(pivoted, key=len)
    phased = [s for s in _phased_plans(problem) if problem.clean(s)]
    if phased:
        return min(phased, key=len)
    fallbacks = []
    if len(pending) * len(_classes(problem, pending)) <= _GREEDY_EVALUATIONS:
        fallbacks.append(_greedy(problem, pending))
    fallbacks.append(_interleaved(problem, pending))
    fallbacks.append(_batched(problem, pending))
    return min(fallbacks, key=problem.excursion)


def _classes(problem: _Problem, order: Sequence[str]) -> list[tuple[str, int, list[str]]]:
    """The pending writes as interchangeable classes: (variant, effective delta, targets).

    Two writes with the same variant and effective change move the totals identically, so
    a search or a greedy choice needs to consider only one of them; targets keep ``order``.
    """
    classes: dict[tuple[str, int], list[str]] = {}
    for target in order:
        variant = problem.variant_of[target]
        delta = (problem.end[target] - problem.start[target]) * problem.count(target)
        classes.setdefault((variant, delta), []).append(target)
    return [(variant, delta, targets) for (variant, delta), targets in classes.items()]


def _direct(problem: _Problem, pending: Sequence[str]) -> list[Step] | None:
    """Depth-first search over orders of the necessary writes, memoised on what is done.

    Iterative (no recursion limit) and over classes of interchangeable writes (see
    :func:`_classes`): a state is how many writes of each class are done, and each node tries
    one write per class. It expands at most ``len(pending) + _DFS_BUDGET`` nodes of
    ``O(classes)`` work each, then gives up for the templates.
    """
    # Raises before lowers keeps the total away from 0 and tends to find a path first.
    order = sorted(pending, key=lambda t: problem.end[t] < problem.start[t])
    classes = _classes(problem, order)
    sizes = tuple(len(targets) for _, _, targets in classes)
    budget = len(pending) + _DFS_BUDGET
    failed: set[tuple[int, ...]] = set()
    totals = problem.totals(problem.start)
    done = [0] * len(classes)
    path: list[int] = []  # class index chosen at each depth
    tried: list[int] = [0]  # per depth, the next class index to try
    expanded = checks = 0
    while len(path) < len(order):
        depth = len(path)
        if tried[depth] == 0:
            if expanded >= budget:
                return None
            if tuple(done) in failed:
                tried[depth] = len(classes)  # known to fail: give it up at once
            expanded += 1
        chosen = None
        while tried[depth] < len(classes):
            index = tried[depth]
            tried[depth] += 1
            if done[index] == sizes[index]:
                continue
            checks += 1
            if checks > _DFS_CHECKS:
                return None
            variant, delta, _ = classes[index]
            totals[variant] += delta
            if problem.box.inside(totals):
                chosen = index
                break
            totals[variant] -= delta
        if chosen is not None:
            done[chosen] += 1
            path.append(chosen)
            tried.append(0)
            continue
        failed.add(tuple(done))  # every child of this node failed
        tried.pop()
        if not path:
            return None
        last = path.pop()
        done[last] -= 1
        variant, delta, _ = classes[last]
        totals[variant] -= delta
    taken = [0] * len(classes)
    steps: list[Step] = []
    for index in path:
        target = classes[index][2][taken[index]]
        taken[index] += 1
        steps.append((target, problem.end[target]))
    return steps


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
    pools = {
        v: _DrainPool([(t, state[t], count(t)) for t in problem.by_variant[v]]) for v in others
    }
    partial = 0
    while True:  # phase 2; untouched variants (before[v] == 0) stay at 0
        total = sum(totals.values())
        rooms: dict[str, int | None] = {}
        for variant in others:
            if totals[variant] == 0:
                continue
            room = None  # effective decrease of `variant` the other variant's bound allows
            for other in others:
                if other != variant and totals[other] > 0:
                    slack = (total * before[other] - totals[other] * grand) // before[other]
                    room = slack if room is None else min(room, slack)
            rooms[variant] = room
        # A write that zeroes a target first (the largest), else the largest partial one;
        # ties to the first variant, then the first target.
        best = max(
            (pools[v].full(room) for v, room in rooms.items()),
            key=lambda found: found[0] if found else -1,
            default=None,
        )
        if not best:
            best = max(
                (pools[v].partial(room) for v, room in rooms.items()),
                key=lambda found: found[0] if found else -1,
                default=None,
            )
            partial += 1
        if not best:
            break
        if partial > _PHASED_MAX_PARTIAL:
            return None
        amount, target = best
        state[target] -= amount // count(target)
        pools[problem.variant_of[target]].set(target, state[target])
        totals[problem.variant_of[target]] -= amount
        steps.append((target, state[target]))
    if any(totals[v] for v in others):
        return None  # stuck: headroom below one address count
    for target in state:  # phase 3
        if state[target] != b[target]:
            state[target] = b[target]
            steps.append((target, b[target]))
    return steps


class _DrainPool:
    """One variant's targets with weight, for the phased drain: the best next write fast.

    Per address count, the targets sorted by (weight, order), so the largest write that
    zeroes a target is a bisection; a partial write (at most ``_PHASED_MAX_PARTIAL`` of them)
    scans. Phase 2 then costs ``O(n log n)`` plus the partial scans instead of ``O(n^2)``.
    """

    def __init__(self, targets: Sequence[tuple[str, int, int]]) -> None:
        self.order = {target: index for index, (target, _, _) in enumerate(targets)}
        self.per = {target: per for target, _, per in targets}
        self.weight = {target: weight for target, weight, _ in targets}
        self.sorted: dict[int, list[tuple[int, int, str]]] = {}
        for target, weight, per in targets:
            if per > 0 and weight > 0:
                self.sorted.setdefault(per, []).append((weight, -self.order[target], target))
        for entries in self.sorted.values():
            entries.sort()

    def full(self, room: int | None) -> tuple[int, str] | None:
        """(effective amount, target) of the largest write to 0 within ``room``; ties to the
        first target."""
        best: tuple[int, int, str] | None = None
        for per, entries in self.sorted.items():
            if not entries:
                continue
            if room is None:
                weight, rank, target = entries[-1]
            else:
                limit = room // per
                at = bisect_right(entries, (limit, 1, ""))
                if at == 0:
                    continue
                weight, rank, target = entries[at - 1]
            key = (weight * per, rank, target)
            if best is None or key[:2] > best[:2]:
                best = key
        return None if best is None else (best[0], best[2])

    def partial(self, room: int | None) -> tuple[int, str] | None:
        """(effective amount, target) of the largest write that lowers a target by ``room``
        without zeroing it; ties to the first target."""
        if room is None:
            return None
        best: tuple[int, int, str] | None = None
        for per, entries in self.sorted.items():
            down = room // per
            if down <= 0:
                continue
            at = bisect_right(entries, (down, 1, ""))
            if at == len(entries):
                continue
            rank = max(entry[1] for entry in entries[at:])  # the first such target
            key = (down * per, rank, self._target_at(entries[at:], rank))
            if best is None or key[:2] > best[:2]:
                best = key
        return None if best is None else (best[0], best[2])

    def set(self, target: str, weight: int) -> None:
        """Record a write of ``target`` to ``weight``."""
        entries = self.sorted[self.per[target]]
        old = (self.weight[target], -self.order[target], target)
        del entries[bisect_left(entries, old)]
        self.weight[target] = weight
        if weight > 0:
            insort(entries, (weight, -self.order[target], target))

    @staticmethod
    def _target_at(entries: Sequence[tuple[int, int, str]], rank: int) -> str:
        return next(target for _, r, target in entries if r == rank)


def _reversed(a: Mapping[str, int], steps: Sequence[Step]) -> list[Step]:
    """Steps from ``b`` back to ``a``, given the steps from ``a`` to ``b``."""
    state = dict(a)
    before: list[Step] = []
    for target, weight in steps:
        before.append((target, state[target]))
        state[target] = weight
    return before[::-1]


def _greedy(problem: _Problem, pending: Sequence[str]) -> list[Step]:
    """Smallest excursion first; never a state with total 0 while another choice exists.

    Ties go to the target earliest in ``pending``. A candidate's cost depends only on its
    class (variant, effective change; see :func:`_classes`), so each step scores one write
    per class: ``O(len(pending) x classes)`` box evaluations in all.
    """
    totals = problem.totals(problem.start)
    classes = _classes(problem, pending)
    position = {t: i for i, t in enumerate(pending)}
    taken = [0] * len(classes)
    steps: list[Step] = []
    for _ in pending:
        best: tuple[bool, Fraction, int] | None = None
        chosen = 0
        for index, (variant, delta, targets) in enumerate(classes):
            if taken[index] == len(targets):
                continue
            totals[variant] += delta
            key = (
                sum(totals.values()) <= 0,
                problem.box.excursion(totals),
                position[targets[taken[index]]],
            )
            totals[variant] -= delta
            if best is None or key < best:
                best, chosen = key, index
        variant, delta, targets = classes[chosen]
        target = targets[taken[chosen]]
        taken[chosen] += 1
        totals[variant] += delta
        steps.append((target, problem.end[target]))
    return steps


def _batched(problem: _Problem, pending: Sequence[str]) -> list[Step]:
    """The fast fallback: the writes in at most six batches, one per variant and direction.

    Within a batch every share and the total move monotonically, so a batch's worst state is
    one of its two ends: every order of the batches (at most 720) is scored exactly from the
    batch totals alone, and the smallest excursion wins (ties: raises first, stable, baseline,
    canary). Its excursion is therefore the smallest any batch order has - in particular at
    most that of "every raise, then every lower", which never leaves total weight 0. Cost:
    ``O(len(pending))`` plus a constant.
    """
    batches: dict[tuple[bool, int], list[str]] = {}
    for target in pending:
        lower = problem.end[target] < problem.start[target]
        batches.setdefault((lower, VARIANTS.index(problem.variant_of[target])), []).append(target)
    keys = sorted(batches)
    delta = {
        key: sum((problem.end[t] - problem.start[t]) * problem.count(t) for t in batches[key])
        for key in keys
    }
    best: tuple[Fraction, tuple[tuple[bool, int], ...]] | None = None
    start = problem.totals(problem.start)
    for order in permutations(keys):
        totals = dict(start)
        worst = Fraction(0)
        for key in order:
            totals[VARIANTS[key[1]]] += delta[key]
            worst = max(worst, problem.box.excursion(totals))
        if best is None or worst < best[0]:
            best = (worst, order)
    assert best is not None  # pending is never empty here
    return [(t, problem.end[t]) for key in best[1] for t in batches[key]]


def _interleaved(problem: _Problem, pending: Sequence[str]) -> list[Step]:
    """The writes merged so every variant's batch progresses at the same pace.

    On the straight line from the old to the new effective totals every share is a ratio of
    two linear functions of the progress, hence monotone: the line stays in the box. Sorting
    each write by the progress its batch (variant, direction) is at halfway through it keeps
    every state within about one write per batch of that line. ``O(n log n)``.
    """
    keyed: list[tuple[Fraction, int, str]] = []
    batches: dict[tuple[str, bool], list[str]] = {}
    for target in pending:
        lower = problem.end[target] < problem.start[target]
        batches.setdefault((problem.variant_of[target], lower), []).append(target)
    for targets in batches.values():
        moves = [abs(problem.end[t] - problem.start[t]) * problem.count(t) for t in targets]
        whole = sum(moves)
        done = 0
        for target, move in zip(targets, moves, strict=True):
            middle = Fraction(2 * done + move, 2 * whole) if whole else Fraction(1, 2)
            keyed.append((middle, problem.end[target] < problem.start[target], target))
            done += move
    position = {t: i for i, t in enumerate(pending)}
    keyed.sort(key=lambda item: (item[0], item[1], position[item[2]]))
    return [(t, problem.end[t]) for _, _, t in keyed]
