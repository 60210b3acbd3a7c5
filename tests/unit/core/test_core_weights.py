"""compute_weights / variant_shares: exact shares, even spread, smallest or fewest-writes scale.

Kong's round-robin wheel has sum(w)/gcd(w) entries and every resolved address carries the full
target weight (Kong/kong ``kong/runloop/balancer/round_robin.lua``, ``afterHostUpdate``: the gcd
and total run over ``targets[i].addresses[j].weight``), which is why shares are checked on
weight x address count and why small weights are preferred.
"""

from __future__ import annotations

from fractions import Fraction
from math import gcd

import pytest
from core_strategies import layouts, names, splits_for, variant_of
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sidecar.core.split import VARIANTS, Split, SplitError
from sidecar.core.weights import TOLERANCE, compute_weights, variant_shares

SANE = settings(max_examples=200, deadline=None)
ONE_EACH = {"stable": ["s"], "baseline": ["b"], "canary": ["c"]}
OF_ONE_EACH = {"s": "stable", "b": "baseline", "c": "canary"}


def pct(stable: object, baseline: object, canary: object) -> Split:
    return Split.from_percentages({"stable": stable, "baseline": baseline, "canary": canary})


def assert_spread(weights: dict[str, int], layout: dict[str, list[str]], split: Split) -> None:
    """Zero share -> all 0; non-zero share -> every target >= 1 and within 1 of its siblings."""
    for variant, targets in layout.items():
        values = [weights[t] for t in targets]
        if split.hundredths(variant) == 0:
            assert values == [0] * len(values)
        else:
            assert min(values) >= 1
            assert max(values) - min(values) <= 1
    assert all(0 <= w <= 65535 for w in weights.values())
    assert sum(weights.values()) > 0
    assert set(weights) == {t for ts in layout.values() for t in ts}


def even_scales(split: Split, layout: dict[str, list[str]], limit: int) -> list[int]:
    """Brute force: scales k (of the gcd-reduced units) where every variant's weight is equal."""
    live = [v for v in VARIANTS if split.hundredths(v)]
    common = 0
    for v in live:
        common = gcd(common, split.hundredths(v))
    units = {v: split.hundredths(v) // common for v in live}
    return [
        k
        for k in range(1, limit + 1)
        if all(units[v] * k % len(layout[v]) == 0 for v in live)
        and all(units[v] * k // len(layout[v]) <= 65535 for v in live)
    ]


def test_rule3_examples_smallest_without_current_fewest_writes_with_it() -> None:
    assert compute_weights(pct(95, 2.5, 2.5), ONE_EACH) == {"s": 38, "b": 1, "c": 1}
    assert compute_weights(pct(90, 5, 5), ONE_EACH) == {"s": 18, "b": 1, "c": 1}
    before = {"s": 76, "b": 2, "c": 2}  # 95/2.5/2.5 at twice the smallest scale
    after = compute_weights(pct(90, 5, 5), ONE_EACH, current=before)
    assert after == {"s": 36, "b": 2, "c": 2}  # one write, not (18, 1, 1) with three
    after = compute_weights(pct(90, 5, 5), ONE_EACH, current={"s": 38, "b": 1, "c": 1})
    assert after == {"s": 18, "b": 1, "c": 1}


def test_pipeline_ramp_with_current_changes_only_stable() -> None:
    layout = {"stable": names("stable", 3), "baseline": names("baseline", 2), "canary": ["c"]}
    weights = compute_weights(Split.STABLE_ONLY, layout)
    for step in [(95, 2.5, 2.5), (90, 5, 5), (80, 10, 10), (50, 25, 25), (0, 50, 50)]:
        split = pct(*step)
        new = compute_weights(split, layout, current=weights)
        assert variant_shares(new, variant_of(layout)) == {v: split.fraction(v) for v in VARIANTS}
        if step != (95, 2.5, 2.5):
            changed = {t for t in new if new[t] != weights[t]}
            assert all(t.startswith("s") for t in changed), (step, weights, new)
        weights = new


def test_several_targets_get_their_variants_share_evenly() -> None:
    layout = {"stable": ["s1", "s2"], "baseline": ["b1", "b2", "b3"], "canary": ["c1"]}
    weights = compute_weights(pct(90, 5, 5), layout)
    # baseline needs 3 equal weights summing to the canary's one: scale 3 -> (27,27),(1,1,1),(3)
    assert weights == {"s1": 27, "s2": 27, "b1": 1, "b2": 1, "b3": 1, "c1": 3}


def test_uneven_only_when_even_cannot_fit_and_then_at_the_largest_scale() -> None:
    layout = {"stable": names("stable", 7), "canary": names("canary", 11)}
    split = pct(99.99, 0, 0.01)
    weights = compute_weights(split, layout)
    assert even_scales(split, layout, 100) == []  # even needs k = 77: stable 109989 > 65535
    assert variant_shares(weights, variant_of(layout))["canary"] == Fraction(1, 10000)
    assert_spread(weights, layout, split)
    assert max(weights.values()) > 65535 - 9999 * 2 // 7  # one more step of k would not fit


def test_approximate_within_half_a_hundredth_when_exact_cannot_fit() -> None:
    layout = {"stable": ["s"], "canary": names("canary", 7)}
    split = pct(99.99, 0, 0.01)
    weights = compute_weights(split, layout)
    shares = variant_shares(weights, variant_of(layout))
    assert shares["canary"] != Fraction(1, 10000)  # exact needs stable 69993
    assert abs(shares["canary"] - Fraction(1, 10000)) <= TOLERANCE
    assert_spread(weights, layout, split)


@pytest.mark.parametrize(
    ("split", "layout", "field", "rule"),
    [
        (pct(99.99, 0, 0.01), {"stable": ["s"], "canary": names("canary", 1000)}, "split", "65535"),
        (pct(95, 0, 5), {"stable": ["s"]}, "split.canary", "has a share of 5% but no targets"),
        (pct(95, 0, 5), {"stable": ["s"], "canary": []}, "split.canary", "no targets"),
        (pct(95, 0, 5), {"stable": ["s"], "green": ["g"]}, "targets.green", "unknown variant"),
        (pct(95, 0, 5), {"stable": ["s"], "canary": ["s"]}, "targets.canary", "listed twice"),
        (pct(95, 0, 5), {"stable": ["s"], "canary": "c"}, "targets.canary", "a list"),
        (pct(95, 0, 5), {"stable": ["s"], "canary": [""]}, "targets.canary", "invalid"),
    ],
)
def test_impossible_or_malformed_requests_raise_split_error(
    split: Split, layout: dict, field: str, rule: str
) -> None:
    with pytest.raises(SplitError) as caught:
        compute_weights(split, layout)
    assert caught.value.field == field
    assert rule in caught.value.rule


def test_address_count_errors() -> None:
    with pytest.raises(SplitError) as caught:
        compute_weights(pct(95, 0, 5), {"stable": ["s"], "canary": ["c"]}, address_counts={"c": 0})
    assert caught.value.field == "split.canary"
    assert "resolved" in caught.value.rule
    with pytest.raises(SplitError) as caught:
        compute_weights(pct(95, 0, 5), {"stable": ["s"], "canary": ["c"]}, address_counts={"c": -1})
    assert caught.value.field == "address_counts.c"
    with pytest.raises(SplitError, match="max_weight"):
        compute_weights(pct(95, 0, 5), ONE_EACH, max_weight=0)


def test_hostname_with_three_addresses_counts_three_times() -> None:
    counts = {"s": 3}
    weights = compute_weights(pct(90, 5, 5), ONE_EACH, address_counts=counts)
    assert weights == {"s": 6, "b": 1, "c": 1}  # Kong: 3 addresses x 6 = 18 vs 1 vs 1
    assert variant_shares(weights, OF_ONE_EACH, counts)["stable"] == Fraction(9, 10)
    assert variant_shares(weights, OF_ONE_EACH)["stable"] == Fraction(6, 8)  # what it looks like


def test_unresolved_target_keeps_its_siblings_weight_and_adds_nothing() -> None:
    layout = {"stable": ["s"], "canary": ["c1", "c2"]}
    weights = compute_weights(pct(90, 0, 10), layout, address_counts={"c2": 0})
    assert weights == {"s": 9, "c1": 1, "c2": 1}
    assert variant_shares(weights, variant_of(layout), {"c2": 0})["canary"] == Fraction(1, 10)


def test_variant_shares_all_zero_and_unknown_target() -> None:
    assert variant_shares({"s": 0, "c": 0}, {"s": "stable", "c": "canary"}) == dict.fromkeys(
        VARIANTS, Fraction(0)
    )
    with pytest.raises(SplitError, match="no known variant"):
        variant_shares({"x": 1}, {})


@SANE
@given(st.data())
def test_shares_are_exact_spread_even_and_idempotent(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    split = data.draw(splits_for(layout))
    weights = compute_weights(split, layout)
    assert variant_shares(weights, variant_of(layout)) == {v: split.fraction(v) for v in VARIANTS}
    assert_spread(weights, layout, split)
    assert compute_weights(split, layout) == weights
    assert compute_weights(split, layout, current=weights) == weights  # nothing to write


@SANE
@given(st.data())
def test_even_whenever_an_even_scale_fits_and_then_the_smallest(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    split = data.draw(splits_for(layout))
    weights = compute_weights(split, layout)
    live = [v for v in VARIANTS if split.hundredths(v)]
    per_variant = {v: {weights[t] for t in layout[v]} for v in live}
    is_even = all(len(values) == 1 for values in per_variant.values())
    # any k beyond 60 * 10000 would overflow 65535 with at most 5 targets per variant
    scales = even_scales(split, layout, 60)
    if not is_even:
        assert scales == []
    else:
        assert scales, "an even result must come from an even scale"
        stable_like = live[0]
        k = scales[0]
        common = 0
        for v in live:
            common = gcd(common, split.hundredths(v))
        smallest = split.hundredths(stable_like) // common * k // len(layout[stable_like])
        assert per_variant[stable_like] == {smallest}


@SANE
@given(st.data())
def test_current_never_costs_more_writes_and_stays_exact(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    old = compute_weights(data.draw(splits_for(layout)), layout)
    scale = data.draw(st.integers(1, 5))
    current = {t: min(w * scale, 65535) for t, w in old.items()}
    split = data.draw(splits_for(layout))
    plain = compute_weights(split, layout)
    informed = compute_weights(split, layout, current=current)

    def writes(weights: dict[str, int]) -> int:
        return sum(weights[t] != current[t] for t in weights)

    assert writes(informed) <= writes(plain)
    assert variant_shares(informed, variant_of(layout)) == {v: split.fraction(v) for v in VARIANTS}
    assert_spread(informed, layout, split)


@SANE
@given(st.data())
def test_address_counts_are_compensated(data: st.DataObject) -> None:
    layout = data.draw(layouts(max_per_variant=3))
    split = data.draw(splits_for(layout))
    counts = {t: data.draw(st.integers(1, 4), label=t) for ts in layout.values() for t in ts}
    try:
        weights = compute_weights(split, layout, address_counts=counts)
    except SplitError as error:  # only when not even 0.005 pp is reachable
        assert error.field == "split"
        assume(False)
    shares = variant_shares(weights, variant_of(layout), counts)
    for variant in VARIANTS:
        assert abs(shares[variant] - split.fraction(variant)) <= TOLERANCE
    for variant, targets in layout.items():
        values = [weights[t] for t in targets]
        if split.hundredths(variant):
            assert min(values) >= 1 and max(values) - min(values) <= 1
        else:
            assert values == [0] * len(values)


@SANE
@given(st.data())
def test_the_same_address_count_everywhere_changes_nothing(data: st.DataObject) -> None:
    """Every target behind the same number of pods: the fan-out cancels out of every share."""
    layout = data.draw(layouts())
    split = data.draw(splits_for(layout))
    count = data.draw(st.integers(2, 6))
    counts = {t: count for ts in layout.values() for t in ts}
    weights = compute_weights(split, layout, address_counts=counts)
    assert weights == compute_weights(split, layout)
    shares = variant_shares(weights, variant_of(layout), counts)
    assert shares == {v: split.fraction(v) for v in VARIANTS}


@SANE
@given(st.data(), st.integers(1, 200))
def test_smaller_max_weight_is_respected(data: st.DataObject, max_weight: int) -> None:
    layout = data.draw(layouts(max_per_variant=3))
    split = data.draw(splits_for(layout))
    try:
        weights = compute_weights(split, layout, max_weight=max_weight)
    except SplitError as error:
        assert error.field == "split"
        assert str(max_weight) in error.rule
        return
    assert max(weights.values()) <= max_weight
    shares = variant_shares(weights, variant_of(layout))
    for variant in VARIANTS:
        assert abs(shares[variant] - split.fraction(variant)) <= TOLERANCE
