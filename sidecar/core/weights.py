"""Percentages -> integer Kong target weights, exactly.

Kong's round-robin balancer gives every resolved *address* of a target the target's full
weight and builds a per-worker wheel of ``sum(weights) / gcd(weights)`` entries, shuffled
(``kong/runloop/balancer/round_robin.lua``, ``afterHostUpdate``). So a split is exact per wheel
cycle when the *effective* weights (weight x addresses) are in the requested ratio, and the
wheel is finest (and smallest in memory) when the weights are the smallest integers that do it.

Order of preference, each one only among the solutions the previous one left:

1. every variant's effective share equals the request exactly (Fraction arithmetic); when no
   integer solution within ``max_weight`` exists, the closest one within 0.005 percentage
   point, else :class:`SplitError`;
2. every target of a variant with a non-zero share carries traffic (weight >= 1) and the
   variant's addresses get equal weight; when that is impossible the leftover units go one
   each to some targets (largest remainder) at the largest scale ``max_weight`` allows, so the
   imbalance is as small as it can be;
3. with ``current``: the scale that leaves the most targets unchanged (fewest Admin API writes);
   without it (and to break ties): the smallest scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd, lcm

from sidecar.core.split import TOTAL, VARIANTS, Split, SplitError

KONG_MAX_WEIGHT = 65535  # kong/db/schema/entities/targets.lua: between = { 0, 65535 }
TOLERANCE = Fraction(1, 2 * TOTAL)  # 0.005 percentage point, as a fraction of 1
_MAX_UNEVEN_SCAN = 20000  # scales tried when address counts make some scales unrepresentable


@dataclass(frozen=True)
class _Group:
    """The targets of one variant with their address counts (0 = resolved to nothing)."""

    variant: str
    targets: tuple[str, ...]
    counts: tuple[int, ...]
    addresses: int = field(init=False)  # sum(counts): read ~20 times per plan

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", sum(self.counts))


def compute_weights(
    split: Split,
    targets_by_variant: Mapping[str, Sequence[str]],
    *,
    current: Mapping[str, int] | None = None,
    max_weight: int = KONG_MAX_WEIGHT,
    address_counts: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Weights per target that give each variant its share of ``split``.

    ``address_counts`` maps a target to its number of resolved addresses (Kong's
    ``/upstreams/{u}/health``); missing targets count as 1. A target that resolved to no
    address gets its variant's base weight: it carries nothing now and its siblings' weight
    once DNS answers.
    """
    if isinstance(max_weight, bool) or not isinstance(max_weight, int) or max_weight < 1:
        raise SplitError("max_weight", "must be a positive integer")
    groups = _groups(targets_by_variant, address_counts)
    shares = {v: split.hundredths(v) for v in VARIANTS}  # read once: used three times
    positive = [v for v in VARIANTS if shares[v] > 0]
    for variant in positive:
        group = groups.get(variant)
        if group is None or not group.targets:
            raise SplitError(
                f"split.{variant}", f"has a share of {split.percent(variant)}% but no targets"
            )
        if group.addresses == 0:
            raise SplitError(
                f"split.{variant}",
                f"has a share of {split.percent(variant)}% but none of its targets "
                "resolved to an address",
            )
    current = dict(current or {})
    result: dict[str, int] = {}
    for variant, group in groups.items():
        if variant not in positive:
            result.update(dict.fromkeys(group.targets, 0))
    common = 0
    for variant in positive:
        common = gcd(common, shares[variant])
    units = {v: shares[v] // common for v in positive}
    pos_groups = [groups[v] for v in positive]
    # Largest k with every per-address weight <= max_weight (k scales all effective totals).
    k_max = min(max_weight * g.addresses // units[g.variant] for g in pos_groups)

    weights = _even(units, pos_groups, k_max, current)
    if weights is None:
        weights = _uneven(units, pos_groups, k_max, max_weight, current)
    if weights is None:
        weights = _approximate(split, pos_groups, max_weight, current)
    result.update(weights)
    return result


def variant_shares(
    weights: Mapping[str, int],
    variant_of: Mapping[str, str],
    address_counts: Mapping[str, int] | None = None,
) -> dict[str, Fraction]:
    """The exact share (0..1) each variant gets, counting every resolved address once."""
    totals = effective_totals(weights, variant_of, address_counts)
    grand = sum(totals.values())
    if grand == 0:
        return dict.fromkeys(VARIANTS, Fraction(0))
    return {v: Fraction(totals[v], grand) for v in VARIANTS}


def effective_totals(
    weights: Mapping[str, int],
    variant_of: Mapping[str, str],
    address_counts: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Sum of weight x address count per variant: what Kong's wheel is built from."""
    counts = address_counts or {}
    totals = dict.fromkeys(VARIANTS, 0)
    for target, weight in weights.items():
        variant = variant_of.get(target)
        if variant not in totals:
            raise SplitError(f"targets.{target}", f"has no known variant (got {variant!r})")
        totals[variant] += weight * counts.get(target, 1)
    return totals


def _groups(
    targets_by_variant: Mapping[str, Sequence[str]], address_counts: Mapping[str, int] | None
) -> dict[str, _Group]:
    counts = address_counts or {}
    for target, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise SplitError(f"address_counts.{target}", "must be a non-negative integer")
    seen: dict[str, str] = {}
    groups: dict[str, _Group] = {}
    for variant, targets in targets_by_variant.items():
        if variant not in VARIANTS:
            raise SplitError(
                f"targets.{variant}", f"unknown variant; expected one of {', '.join(VARIANTS)}"
            )
        if isinstance(targets, str):
            raise SplitError(f"targets.{variant}", "must be a list of targets, not a string")
        for target in targets:
            if not isinstance(target, str) or not target:
                raise SplitError(f"targets.{variant}", f"invalid target {target!r}")
            if target in seen:
                raise SplitError(
                    f"targets.{variant}",
                    f"target {target} is listed twice (already under {seen[target]})",
                )
            seen[target] = variant
        groups[variant] = _Group(variant, tuple(targets), tuple(counts.get(t, 1) for t in targets))
    return {v: groups[v] for v in VARIANTS if v in groups}


def _even(
    units: Mapping[str, int], groups: Sequence[_Group], k_max: int, current: Mapping[str, int]
) -> dict[str, int] | None:
    """Scales k where every address of a variant gets the same weight u_v*k/A_v, if any fit."""
    step = lcm(*(g.addresses // gcd(g.addresses, units[g.variant]) for g in groups))
    if step > k_max:
        return None
    candidates = {step}
    for group in groups:  # the one k per target that would leave its current weight alone
        for target in group.targets:
            now = current.get(target)
            if not now:
                continue
            k, rest = divmod(now * group.addresses, units[group.variant])
            if rest == 0 and k % step == 0 and step <= k <= k_max:
                candidates.add(k)

    def at(k: int) -> dict[str, int]:
        return {t: units[g.variant] * k // g.addresses for g in groups for t in g.targets}

    best = min(candidates, key=lambda k: (-_unchanged(at(k), current), k))
    return at(best)


def _uneven(
    units: Mapping[str, int],
    groups: Sequence[_Group],
    k_max: int,
    max_weight: int,
    current: Mapping[str, int],
) -> dict[str, int] | None:
    """Exact shares with per-target weights w or w+1: the largest scale, for the smallest skew."""
    k_min = max(-(-g.addresses // units[g.variant]) for g in groups)  # every address >= 1
    for k in range(k_max, max(k_min, k_max - _MAX_UNEVEN_SCAN) - 1, -1):
        weights: dict[str, int] = {}
        for group in groups:
            spread = _spread(units[group.variant] * k, group, max_weight, current)
            if spread is None:
                break
            weights.update(spread)
        else:
            return weights
    return None


def _approximate(
    split: Split, groups: Sequence[_Group], max_weight: int, current: Mapping[str, int]
) -> dict[str, int]:
    """No exact integer solution fits: the largest scale, checked against 0.005 pp."""
    scale = min(
        Fraction(TOTAL * max_weight * g.addresses, split.hundredths(g.variant)) for g in groups
    )
    total = int(scale)
    ideal = {g.variant: Fraction(split.hundredths(g.variant) * total, TOTAL) for g in groups}
    weights: dict[str, int] = {}
    effective: dict[str, int] = {}
    for group in groups:
        low, high = group.addresses, group.addresses * max_weight
        want = min(max(round(ideal[group.variant]), low), high)
        for amount in _nearest_first(want, low, high, group.addresses):
            spread = _spread(amount, group, max_weight, current)
            if spread is not None:
                weights.update(spread)
                effective[group.variant] = amount
                break
        else:  # pragma: no cover - w*A is always representable, so the loop always hits
            raise AssertionError("no representable total")
    grand = sum(effective.values())
    for variant in VARIANTS:
        got = Fraction(effective.get(variant, 0), grand)
        if abs(got - split.fraction(variant)) > TOLERANCE:
            raise SplitError(
                "split",
                f"cannot be met with integer weights up to {max_weight} "
                "(every target of a variant with a share needs weight >= 1): "
                f"{variant} would get {float(got * 100):.4f}% instead of "
                f"{split.percent(variant)}% (allowed error 0.005 percentage point); "
                "use fewer targets or a larger share",
            )
    return weights


def _nearest_first(want: int, low: int, high: int, span: int) -> Iterable[int]:
    yield want
    for distance in range(1, span + 1):
        for amount in (want - distance, want + distance):
            if low <= amount <= high:
                yield amount


def _spread(
    amount: int, group: _Group, max_weight: int, current: Mapping[str, int]
) -> dict[str, int] | None:
    """Split an effective total over a variant's addresses as evenly as integers allow.

    Every target gets ``base`` or ``base + 1``; which ones get the extra is a subset-sum over
    address counts (trivial when every count is 1). Targets already at ``base + 1`` are
    preferred so fewer of them change.
    """
    addresses = group.addresses
    base, rest = divmod(amount, addresses)
    if base < 1 or base + (1 if rest else 0) > max_weight:
        return None
    weights = dict.fromkeys(group.targets, base)
    if rest:
        live = [(t, c) for t, c in zip(group.targets, group.counts, strict=True) if c > 0]
        live.sort(key=lambda item: current.get(item[0]) != base + 1)  # stable: keeps order
        chosen = _subset_with_sum([c for _, c in live], rest)
        if chosen is None:
            return None
        for index in chosen:
            weights[live[index][0]] = base + 1
    return weights


def _subset_with_sum(items: Sequence[int], goal: int) -> list[int] | None:
    """Indices of a subset of ``items`` summing to ``goal``, preferring earlier items."""
    reachable = [0] * (len(items) + 1)  # reachable[i]: bitmask of sums made from items[i:]
    reachable[len(items)] = 1
    mask = (1 << (goal + 1)) - 1
    for i in range(len(items) - 1, -1, -1):
        reachable[i] = (reachable[i + 1] | (reachable[i + 1] << items[i])) & mask
    if not (reachable[0] >> goal) & 1:
        return None
    chosen: list[int] = []
    need = goal
    for i, item in enumerate(items):
        if need == 0:
            break
        if item <= need and (reachable[i + 1] >> (need - item)) & 1:
            chosen.append(i)
            need -= item
    return chosen


def _unchanged(weights: Mapping[str, int], current: Mapping[str, int]) -> int:
    return sum(1 for t, w in weights.items() if current.get(t) == w)
