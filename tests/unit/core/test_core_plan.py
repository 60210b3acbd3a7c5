"""plan_writes: replay every plan and check every intermediate state against the box.

The box of a change is, per variant, the interval between its old and its new share; all-zero
states are forbidden because Kong's balancer then answers 503 "failure to get a peer from the
ring-balancer" (kong/runloop/balancer/init.lua). ``max_excursion`` is the yardstick.
"""

from __future__ import annotations

import random
from fractions import Fraction
from itertools import permutations

import pytest
from core_strategies import layouts, names, splits_for, variant_of
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from sidecar.core.plan import Write, _Box, max_excursion, plan_writes
from sidecar.core.split import VARIANTS, Split, SplitError
from sidecar.core.weights import compute_weights, effective_totals

SANE = settings(max_examples=200, deadline=None)
OF = {"s": "stable", "s2": "stable", "b": "baseline", "c": "canary"}
PIPELINE = [(95, 2.5, 2.5), (90, 5, 5), (80, 10, 10), (50, 25, 25), (0, 50, 50)]


def pct(stable: object, baseline: object, canary: object) -> Split:
    return Split.from_percentages({"stable": stable, "baseline": baseline, "canary": canary})


def replay(current: dict[str, int], writes: list[Write]) -> dict[str, int]:
    """Apply writes, checking what a Kong client relies on: old matches, no no-op writes."""
    state = dict(current)
    for write in writes:
        assert state.get(write.target) == write.old
        assert write.old != write.new
        if write.new is None:
            del state[write.target]
        else:
            state[write.target] = write.new
    return state


def target_shares(weights: dict[str, int], counts: dict[str, int] | None) -> dict[str, Fraction]:
    """Each target's share of traffic: what Kong's balancer serves."""
    effective = {t: w * (counts or {}).get(t, 1) for t, w in weights.items()}
    total = sum(effective.values())
    return {t: Fraction(e, total) for t, e in effective.items() if e}


def check(
    current: dict[str, int],
    desired: dict[str, int],
    of: dict[str, str],
    *,
    counts: dict[str, int] | None = None,
    deletes: tuple[str, ...] = (),
) -> tuple[list[Write], Fraction]:
    """Plan, replay, and check the invariants that hold for every plan."""
    writes = plan_writes(current, desired, of, deletes=deletes, address_counts=counts)
    final = replay(current, writes)
    expected = {t: w for t, w in {**current, **desired}.items() if t not in deletes}
    # Lands on ``desired``, or short of it where every target already has its share
    # (Kong balances on shares); never short at the maximum weight.
    assert final == expected or (
        target_shares(final, counts) == target_shares(expected, counts)
        and max(final.values()) < 65535
    )
    state = dict(current)
    for write in writes:
        state = replay(state, [write])
        assert sum(effective_totals(state, of, counts).values()) > 0, "all-zero state"
    deleted = [w for w in writes if w.new is None]
    assert writes[len(writes) - len(deleted) :] == deleted, "deletes come last"
    assert all(w.old == 0 for w in deleted)
    return writes, max_excursion(current, writes, of, counts)


def test_no_op_is_empty_and_single_write_is_direct() -> None:
    assert plan_writes({"s": 38, "b": 1, "c": 1}, {"s": 38, "b": 1, "c": 1}, OF) == []
    assert plan_writes({"s": 38, "b": 1, "c": 1}, {"s": 18}, OF) == [Write("s", "stable", 38, 18)]


def test_stable_only_to_canary_raises_stable_past_its_target_first() -> None:
    writes, excursion = check({"s": 1}, {"s": 18, "b": 1, "c": 1}, OF)
    # with s=18 the single write b=1 would give baseline 1/19 > 5 %: stable makes room first
    assert writes == [
        Write("s", "stable", 1, 19),
        Write("b", "baseline", None, 1),
        Write("c", "canary", None, 1),
        Write("s", "stable", 19, 18),
    ]
    assert excursion == 0


def test_naive_order_would_overshoot() -> None:
    naive = [Write("s", "stable", 1, 18), Write("b", "baseline", 0, 1), Write("c", "canary", 0, 1)]
    assert max_excursion({"s": 1, "b": 0, "c": 0}, naive, OF) == Fraction(1, 19) - Fraction(1, 20)


def test_rollback_with_deletes_drains_then_deletes_last() -> None:
    writes, excursion = check({"s": 18, "b": 1, "c": 1}, {"s": 1}, OF, deletes=("b", "c"))
    assert excursion == 0
    assert writes[-2:] == [Write("b", "baseline", 0, None), Write("c", "canary", 0, None)]


@pytest.mark.parametrize("deletes", [(), ("b", "c")])
def test_a_rollback_does_not_write_the_pivot_back_when_shares_are_already_final(
    deletes: tuple[str, ...],
) -> None:
    """From 95/2.5/2.5 as (38, 1, 1) the canary cannot go first (1/39 > 2.5 %): stable makes
    room (39), then baseline and canary drain. Stable alone serves 100 % at 39 as at 38, so
    the write back to 38 would move nothing and only delay the end of the rollback."""
    writes, excursion = check(
        {"s": 38, "b": 1, "c": 1}, {"s": 38, "b": 0, "c": 0}, OF, deletes=deletes
    )
    assert excursion == 0
    moves = [w for w in writes if w.new is not None]
    assert moves == [
        Write("s", "stable", 38, 39),
        Write("b", "baseline", 1, 0),
        Write("c", "canary", 1, 0),
    ]


def test_a_pivot_that_changes_shares_is_still_written_back() -> None:
    """Two stable targets: raising one of them changes how stable's traffic is divided
    (11:9 is not 10:9), so the pivot's write back is needed and made."""
    current = {"s": 10, "s2": 9, "b": 1, "c": 1}
    writes, excursion = check(current, {**current, "b": 0, "c": 0}, OF)
    assert excursion == 0
    assert writes[0] == Write("s", "stable", 10, 11)
    assert writes[-1] == Write("s", "stable", 11, 10)


@pytest.mark.parametrize("drop", [False, True])
def test_rollback_from_zero_stable_raises_stable_to_the_maximum_first(drop: bool) -> None:
    """Hypothesis found it: 0/56.27/43.73 -> stable-only, 1 + 3 + 5 targets.

    Stable (0 -> 1) cannot outweigh baseline 3 x 28135 and canary 5 x 13119, and with any
    stable weight draining either variant first pushes the other past its old share; at 65535
    the drains interleave and each fits the headroom, so one write per target is enough.
    """
    layout = {
        "stable": names("stable", 1),
        "baseline": names("baseline", 3),
        "canary": names("canary", 5),
    }
    of = variant_of(layout)
    current = compute_weights(Split(stable=0, baseline=5627, canary=4373), layout)
    assert current == {
        "s0.svc:8000": 0,
        **dict.fromkeys(layout["baseline"], 28135),
        **dict.fromkeys(layout["canary"], 13119),
    }
    deletes = tuple(t for t in of if of[t] != "stable") if drop else ()
    desired = {"s0.svc:8000": 1} if drop else compute_weights(Split.STABLE_ONLY, layout)
    writes, excursion = check(current, desired, of, deletes=deletes)
    assert excursion == 0
    drained = [w for w in writes if w.new is not None]
    assert drained[0] == Write("s0.svc:8000", "stable", 0, 65535)
    # not left at the maximum: the next rollback's pivot needs room
    assert drained[-1] == Write("s0.svc:8000", "stable", 65535, 1)
    assert len(drained) == 10  # one write per baseline and canary target


def test_rollback_with_one_unit_of_stable_room_drains_in_rounds() -> None:
    """The worst case found for 5 targets per variant: stable can grow by 1 (of 720884).

    Each partial drain uses up the other variant's headroom and multiplies the potential
    ``a_b g_b + a_c g_c`` by about 1 + a_s / a_b = 1.2, so 60 partial writes; both ways.
    """
    of = variant_of(
        {"stable": ["s"], "baseline": names("baseline", 5), "canary": names("canary", 5)}
    )
    mixed = {t: 65534 if of[t] == "stable" else 65535 for t in of}
    only = {t: 1 if of[t] == "stable" else 0 for t in of}
    for current, desired in ((mixed, only), (only, mixed)):
        writes, excursion = check(current, desired, of)
        assert excursion == 0
        assert len(writes) <= 1 + 10 + 1 + 60


def test_rollback_with_stable_at_the_maximum_cannot_be_clean() -> None:
    """Stable full and two other variants: every write raises baseline's or canary's share."""
    cap = 50  # a small max_weight keeps the exhaustive check fast; 65535 behaves the same
    current, desired = {"s": cap, "b": 1, "c": 1}, {"s": cap, "b": 0, "c": 0}
    for target in current:
        for weight in range(cap + 1):
            state = {**current, target: weight}
            if weight == current[target] or sum(state.values()) == 0:
                continue
            total = sum(state.values())
            assert state["b"] * (cap + 2) > total or state["c"] * (cap + 2) > total, state
    writes = plan_writes(current, desired, OF, max_weight=cap)
    assert max_excursion(current, writes, OF) > 0


def test_same_ratio_with_a_scale_up_uses_an_intermediate_weight() -> None:
    writes, excursion = check({"s": 38, "b": 1, "c": 1}, {"s": 36, "b": 2, "c": 2}, OF)
    assert excursion == 0
    assert [w.new for w in writes] == [37, 2, 2, 36]


@pytest.mark.parametrize(
    "layout",
    [
        {"stable": ["s"], "baseline": ["b"], "canary": ["c"]},
        {"stable": names("stable", 2), "baseline": names("baseline", 2), "canary": ["c"]},
        {"stable": names("stable", 3), "baseline": ["b"], "canary": names("canary", 4)},
    ],
)
def test_the_pipeline_sequence_and_rollback_from_every_step(layout: dict) -> None:
    of = variant_of(layout)
    stable_only = compute_weights(Split.STABLE_ONLY, layout)
    weights = stable_only
    for step in PIPELINE:
        split = pct(*step)
        new = compute_weights(split, layout, current=weights)
        writes, excursion = check(weights, new, of)
        assert excursion == 0, (step, weights, new, writes)
        rollback, back = check(new, stable_only, of)
        assert back == 0, (step, new, rollback)
        weights = new


def test_only_the_changed_target_is_written_in_a_ramp() -> None:
    current = {"s": 38, "b": 1, "c": 1}
    new = compute_weights(
        pct(90, 5, 5), {"stable": ["s"], "baseline": ["b"], "canary": ["c"]}, current=current
    )
    assert plan_writes(current, new, OF) == [Write("s", "stable", 38, 18)]


def test_constant_share_variant_makes_excursion_unavoidable() -> None:
    """90/5/5 -> 90/7/3: stable's box is the point 90 %, and every single write moves it."""
    current, desired = {"s": 18, "b": 1, "c": 1}, {"s": 90, "b": 7, "c": 3}
    for order in permutations(desired):
        naive = [Write(t, OF[t], current[t], desired[t]) for t in order]
        assert max_excursion(current, naive, OF) > 0
    _, excursion = check(current, desired, OF)
    assert (
        0
        < excursion
        <= min(
            max_excursion(current, [Write(t, OF[t], current[t], desired[t]) for t in order], OF)
            for order in permutations(desired)
        )
    )


def test_too_coarse_a_start_cannot_be_excursion_free() -> None:
    """50/25/25 as (2,1,1) -> 40/30/30: no first write, of any weight, stays in the box.

    The box is stable in [40, 50] %, baseline and canary in [25, 30] %. Exhaustive over every
    weight Kong accepts, in integers: share = E_v / total compared by cross-multiplication.
    """
    current, desired = {"s": 2, "b": 1, "c": 1}, {"s": 4, "b": 3, "c": 3}
    box = {"s": (40, 50), "b": (25, 30), "c": (25, 30)}  # percent
    for target in current:
        for weight in range(65536):
            if weight == current[target]:
                continue
            state = {**current, target: weight}
            total = sum(state.values())
            inside = all(lo * total <= 100 * state[t] <= hi * total for t, (lo, hi) in box.items())
            assert not inside, (target, weight)
    _, excursion = check(current, desired, OF)
    assert excursion > 0


def test_creates_and_zero_weight_creates() -> None:
    writes, excursion = check({"s": 1}, {"s": 1, "c": 0}, OF)
    assert writes == [Write("c", "canary", None, 0)]
    assert excursion == 0


@pytest.mark.parametrize(
    ("current", "desired", "kwargs", "field"),
    [
        ({"s": 1, "c": 1}, {"c": 2}, {"deletes": ["c"]}, "desired.c"),
        ({"s": 1, "c": 1}, {"s": 0, "c": 0}, {}, "desired"),
        ({"s": 1, "c": 1}, {"c": 0}, {"deletes": ["s"]}, "desired"),
        ({"s": 1, "x": 1}, {"s": 2}, {}, "targets.x"),
        ({"s": 1}, {"s": 70000}, {}, "desired.s"),
        ({"s": 1}, {"s": 2.0}, {}, "desired.s"),
    ],
)
def test_invalid_plans_raise(current: dict, desired: dict, kwargs: dict, field: str) -> None:
    with pytest.raises(SplitError) as caught:
        plan_writes(current, desired, OF, **kwargs)
    assert caught.value.field == field


def test_max_excursion_refuses_a_plan_for_another_state() -> None:
    with pytest.raises(ValueError, match="expects"):
        max_excursion({"s": 2}, [Write("s", "stable", 1, 3)], OF)
    assert max_excursion({"s": 2}, [], OF) == 0
    assert (
        max_excursion(
            {"s": 2, "c": 0}, [Write("s", "stable", 2, 0), Write("c", "canary", 0, 1)], OF
        )
        == 1
    )


def test_hostname_counts_change_the_box() -> None:
    counts = {"b": 3}  # baseline is a hostname with three addresses
    layout = {"stable": ["s"], "baseline": ["b"], "canary": ["c"]}
    desired = compute_weights(pct(90, 5, 5), layout, address_counts=counts)
    assert desired == {"s": 54, "b": 1, "c": 3}
    _, excursion = check({"s": 1}, desired, OF, counts=counts)
    assert excursion == 0
    blind = [  # clean if every target had one address ...
        Write("s", "stable", 1, 55),
        Write("c", "canary", None, 3),
        Write("b", "baseline", None, 1),
        Write("s", "stable", 55, 54),
    ]
    assert max_excursion({"s": 1}, blind, OF) == 0
    assert max_excursion({"s": 1}, blind, OF, counts) > 0  # ... but b counts three times


@SANE
@given(st.data())
def test_from_stable_only_to_any_split_is_excursion_free(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    of = variant_of(layout)
    current = {t: data.draw(st.integers(1, 500), label=t) for t in layout["stable"]}
    if data.draw(st.booleans(), label="zero-weight targets already exist"):
        current.update(dict.fromkeys([t for t in of if of[t] != "stable"], 0))
    split = data.draw(splits_for(layout))
    desired = compute_weights(split, layout)
    _, excursion = check(current, desired, of)
    assert excursion == 0


@SANE
@given(st.data())
def test_any_split_back_to_stable_only_is_excursion_free(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    of = variant_of(layout)
    current = compute_weights(data.draw(splits_for(layout)), layout)
    desired = compute_weights(Split.STABLE_ONLY, layout)
    drop = data.draw(st.booleans(), label="delete baseline and canary")
    deletes = tuple(t for t in of if of[t] != "stable") if drop else ()
    if drop:
        desired = {t: w for t, w in desired.items() if t not in deletes}
    _, excursion = check(current, desired, of, deletes=deletes)
    assert excursion == 0


@SANE
@given(st.data())
def test_fixed_ratio_ramps_moving_only_stable_are_excursion_free(data: st.DataObject) -> None:
    layout = data.draw(layouts())
    of = variant_of(layout)
    current = compute_weights(data.draw(splits_for(layout)), layout)
    desired = stable_moved(data, layout, current, of, step_each=True)
    _, excursion = check(current, desired, of)
    assert excursion == 0


def stable_moved(
    data: st.DataObject,
    layout: dict[str, list[str]],
    current: dict[str, int],
    of: dict[str, str],
    *,
    step_each: bool,
) -> dict[str, int]:
    """``current`` with only the stable targets moved, all one way (a fixed-ratio ramp step);
    one drawn step per target, or one for all (thousands of targets)."""
    up = data.draw(st.booleans(), label="stable grows")
    shared = None if step_each else data.draw(st.integers(0, 300), label="step")
    desired = dict(current)
    for target in layout["stable"]:
        step = shared if shared is not None else data.draw(st.integers(0, 300), label=target)
        desired[target] = (
            min(current[target] + step, 65535) if up else max(current[target] - step, 0)
        )
    if sum(effective_totals(desired, of).values()) == 0:
        desired[layout["stable"][0]] = 1
    return desired


@SANE
@given(st.data())
def test_any_change_replays_exactly_and_idempotently(data: st.DataObject) -> None:
    layout = data.draw(layouts(max_per_variant=3))
    of = variant_of(layout)
    weight = st.integers(0, 40)
    current = {t: data.draw(weight, label=f"now {t}") for t in of}
    if not any(current.values()):
        current[layout["stable"][0]] = 1
    desired = {t: data.draw(weight, label=f"new {t}") for t in of}
    if not any(desired.values()):
        desired[layout["stable"][0]] = 1
    writes, excursion = check(current, desired, of)
    assert 0 <= excursion <= 1
    assert plan_writes(current, desired, of) == writes  # deterministic
    assert plan_writes(desired, desired, of) == []


@SANE
@given(st.data())
def test_finds_a_clean_order_whenever_one_exists(data: st.DataObject) -> None:
    """Brute force over every order of the necessary writes (up to 4 of them)."""
    targets = {"s": "stable", "s2": "stable", "b": "baseline", "c": "canary"}
    weight = st.integers(0, 12)
    current = {t: data.draw(weight, label=f"now {t}") for t in targets}
    desired = {t: data.draw(weight, label=f"new {t}") for t in targets}
    if not any(current.values()) or not any(desired.values()):
        return
    changed = [t for t in targets if current[t] != desired[t]]
    clean = any(
        max_excursion(
            current, [Write(t, targets[t], current[t], desired[t]) for t in order], targets
        )
        == 0
        for order in permutations(changed)
    )
    _, excursion = check(current, desired, targets)
    if clean:
        assert excursion == 0


@SANE
@given(st.data())
def test_any_weights_to_and_from_stable_only_are_clean_exactly_when_stable_has_room(
    data: st.DataObject,
) -> None:
    """Arbitrary weights up to Kong's maximum, not only those compute_weights returns."""
    layout = data.draw(layouts())
    of = variant_of(layout)
    weight = st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 65534, 65535]))
    mixed = {t: data.draw(weight, label=t) for t in of}
    if not any(mixed.values()):
        mixed[layout["stable"][0]] = 1
    only = {t: data.draw(st.integers(1, 65535), label=f"only {t}") for t in layout["stable"]}
    only.update({t: 0 for t in of if of[t] != "stable"})
    room = any(mixed[t] < 65535 for t in layout["stable"])
    carrying = [v for v in ("baseline", "canary") if any(mixed.get(t) for t in layout.get(v, []))]
    forward = data.draw(st.booleans(), label="rollback (else the reverse)")
    current, desired = (mixed, only) if forward else (only, mixed)
    _, excursion = check(current, desired, of)
    assert (excursion == 0) == (room or len(carrying) < 2 or mixed == only)


# Up to the API's limits: TARGET_LIST in sidecar/api/schemas.py allows 1,000 targets per variant.
MAX_TARGETS = 1000
LARGE = settings(max_examples=10, deadline=None)


def weights_or_reject(split: Split, layout: dict[str, list[str]]) -> dict[str, int]:
    """compute_weights, rejecting splits a thousand targets cannot meet (0.01 % over 1,000)."""
    try:
        return compute_weights(split, layout)
    except SplitError:
        reject()


def check_large(
    current: dict[str, int], desired: dict[str, int], of: dict[str, str]
) -> tuple[list[Write], Fraction]:
    """``check`` for thousands of targets: replay once, excursion incrementally."""
    writes = plan_writes(current, desired, of)
    assert replay(current, writes) == {**current, **desired}
    return writes, max_excursion(current, writes, of)


def test_500_plus_500_new_targets_plan_without_recursion() -> None:
    """Issue 13 item 7: the depth-first search recursed once per target (RecursionError)."""
    layout = {
        "stable": ["s0.svc:8000"],
        "baseline": names("baseline", 500),
        "canary": names("canary", 500),
    }
    of = variant_of(layout)
    desired = compute_weights(pct(90, 5, 5), layout)
    writes, excursion = check_large({"s0.svc:8000": 1}, desired, of)
    assert excursion == 0
    assert len(writes) == 1001 + 1  # the pivot: stable makes room first, then settles


@LARGE
@given(st.data())
def test_up_to_the_schema_limit_from_and_to_stable_only_is_excursion_free(
    data: st.DataObject,
) -> None:
    layout = data.draw(layouts(max_per_variant=MAX_TARGETS))
    of = variant_of(layout)
    stable_only = compute_weights(Split.STABLE_ONLY, layout)
    mixed = weights_or_reject(data.draw(splits_for(layout)), layout)
    _, forward = check_large(stable_only, mixed, of)
    _, back = check_large(mixed, stable_only, of)
    assert (forward, back) == (0, 0)


@LARGE
@given(st.data())
def test_up_to_the_schema_limit_fixed_ratio_ramps_are_excursion_free(data: st.DataObject) -> None:
    layout = data.draw(layouts(max_per_variant=MAX_TARGETS))
    of = variant_of(layout)
    current = weights_or_reject(data.draw(splits_for(layout)), layout)
    desired = stable_moved(data, layout, current, of, step_each=False)
    _, excursion = check_large(current, desired, of)
    assert excursion == 0


@settings(max_examples=4, deadline=None)
@given(st.data())
def test_up_to_the_schema_limit_arbitrary_weights_replay_exactly(data: st.DataObject) -> None:
    """Thousands of distinct weight changes: the fallbacks must still land exactly.

    Every change gets a plan that replays to the desired weights and never leaves total
    weight 0 when a raise-first order avoids it; excursion is what the fallbacks achieve.
    """
    layout = data.draw(layouts(max_per_variant=MAX_TARGETS))
    of = variant_of(layout)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = random.Random(seed)
    current = {t: rng.randint(0, 65535) for t in of}
    desired = {t: rng.randint(0, 65535) for t in of}
    current[layout["stable"][0]] = desired[layout["stable"][0]] = 1
    writes, excursion = check_large(current, desired, of)
    assert excursion < 1  # never an all-zero state
    assert plan_writes(current, desired, of) == writes  # deterministic


def fraction_box(start: dict[str, int], end: dict[str, int]) -> tuple[dict, dict] | None:
    """The box as it was computed before it kept integer pairs: min/max of Fraction shares."""
    grand_a, grand_b = sum(start.values()), sum(end.values())
    if grand_a == 0:
        return dict.fromkeys(VARIANTS, Fraction(0)), dict.fromkeys(VARIANTS, Fraction(1))
    a = {v: Fraction(start[v], grand_a) for v in VARIANTS}
    b = {v: Fraction(end[v], grand_b) for v in VARIANTS}
    return {v: min(a[v], b[v]) for v in VARIANTS}, {v: max(a[v], b[v]) for v in VARIANTS}


totals_strategy = st.fixed_dictionaries(
    {v: st.integers(0, 40) | st.integers(0, 65535 * 3) for v in VARIANTS}
)


@settings(max_examples=400, deadline=None)
@given(totals_strategy, totals_strategy.filter(lambda t: any(t.values())), st.data())
def test_the_integer_box_is_the_fraction_box(
    start: dict[str, int], end: dict[str, int], data: st.DataObject
) -> None:
    # states on the box's edges and one unit off them, or anywhere
    edge = st.sampled_from([start, end]).flatmap(
        lambda t: st.fixed_dictionaries(
            {v: st.sampled_from([max(0, t[v] - 1), t[v], t[v] + 1]) for v in VARIANTS}
        )
    )
    state = data.draw(edge | st.sampled_from([start, end]) | totals_strategy)
    box = _Box.between(start, end)
    lo, hi = fraction_box(start, end)
    assert (box.lo, box.hi) == (lo, hi)
    grand = sum(state.values())
    shares = {v: Fraction(state[v], grand) for v in VARIANTS} if grand else None
    assert box.inside(state) == (
        shares is not None and all(lo[v] <= shares[v] <= hi[v] for v in VARIANTS)
    )
    worst = Fraction(1) if shares is None else Fraction(0)
    if shares is not None:
        for v in VARIANTS:
            worst = max(worst, lo[v] - shares[v], shares[v] - hi[v])
    assert box.excursion(state) == worst


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_a_single_write_is_what_the_direct_search_finds(data: st.DataObject) -> None:
    """``_plan``'s shortcut for one pending write gives the direct search's answer (the
    search is the oracle), for any variants, address counts and weights, zero totals before
    included, whenever the state after serves traffic (plan_writes refuses the rest)."""
    from sidecar.core.plan import _direct, _plan, _Problem

    size = data.draw(st.integers(1, 6))
    targets = [f"10.0.0.{i}:80" for i in range(size)]
    variants = {t: data.draw(st.sampled_from(VARIANTS)) for t in targets}
    counts = {t: data.draw(st.integers(0, 3)) for t in targets}
    max_weight = data.draw(st.sampled_from([3, 100, 65535]))
    start = {t: data.draw(st.integers(0, max_weight)) for t in targets}
    moved = data.draw(st.sampled_from(targets))
    new = data.draw(st.integers(0, max_weight).filter(lambda w: w != start[moved]))
    end = {**start, moved: new}
    if sum(w * counts[t] for t, w in end.items()) <= 0:
        reject()
    problem = _Problem(start, end, variants, counts, max_weight)
    assert _plan(start, end, variants, counts, max_weight) == _direct(problem, [moved])
