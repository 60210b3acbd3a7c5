"""plan_change: every ordering rule of a traffic change as a property of its plan.

The plan's writes are replayed against the targets Kong showed, the way Kong applies them
(one at a time, every intermediate state serving traffic), and each rule is checked on every
intermediate state: creates before any write gives a target weight, deletes last and only of
weight-0 targets, re-tags without weight change first, the lease tag ordered around traffic
leaving and returning to stable, never all weights zero.
"""

from __future__ import annotations

import pytest
from core_strategies import layouts, splits_for
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sidecar.core.change import (
    MANAGED_TAG,
    ChangePlan,
    KongWrite,
    TargetState,
    managed_tags,
    members_of,
    plan_change,
    write_batches,
)
from sidecar.core.lease import Marks
from sidecar.core.refusals import (
    NoTargets,
    Refusal,
    UnhealthyTarget,
    UnknownVariantTarget,
    Unsplittable,
)
from sidecar.core.split import VARIANTS, Split

SANE = settings(max_examples=150, deadline=None)
LEASED = Marks(managed=True, lease_until=2_000_000_000.0)
UNLEASED = Marks(managed=True)
HEALTHS = (None, "HEALTHY", "UNHEALTHY", "DNS_ERROR", "HEALTHCHECKS_OFF")


def state(
    target: str,
    weight: int,
    variant: str = "stable",
    *,
    tagged: bool = True,
    health: str | None = None,
    extra_tags: tuple[str, ...] = (),
) -> TargetState:
    tags = managed_tags(extra_tags, variant) if tagged else extra_tags
    return TargetState(target, f"id-{target}", weight, tags, variant, tagged, health)


@st.composite
def kong_targets(draw: st.DrawFn) -> list[TargetState]:
    """What Kong may show: our variants (some untagged stable, some tagged by hand without
    our managed tag), weights often 0, any health, and now and then a weight-0 target of a
    variant we do not know."""
    layout = draw(layouts(max_per_variant=3, stable_min=0))
    out = []
    for variant, names in layout.items():
        for name in names:
            untagged = variant == "stable" and draw(st.booleans())
            hand_tagged = not untagged and draw(st.integers(0, 4)) == 0
            out.append(
                TargetState(
                    name,
                    f"id-{name}",
                    draw(st.sampled_from([0, 0, 1, 5, 100, 1000])),
                    (f"variant={variant}",) if hand_tagged else state(name, 0, variant).tags,
                    variant,
                    not untagged,
                    draw(st.sampled_from(HEALTHS)),
                )
                if not untagged
                else state(name, draw(st.sampled_from([0, 1, 100])), tagged=False)
            )
    if draw(st.booleans()):
        out.append(state("x0.svc:8000", 0, "experiment"))
    return out


@st.composite
def changes(draw: st.DrawFn) -> tuple[list[TargetState], Split, dict[str, list[str]], bool]:
    """A Kong state, a split, the members named (sometimes new targets) and remove_others
    (only ever asked with the stable-only split)."""
    targets = draw(kong_targets())
    wanted: dict[str, list[str]] = {}
    for variant in VARIANTS:
        if draw(st.integers(0, 2)) == 0:
            fresh = draw(st.integers(1, 2))
            wanted[variant] = [f"n{variant[0]}{i}.svc:9000" for i in range(fresh)]
    members = members_of(targets, wanted)
    assume(any(members.values()))  # nothing could carry the traffic
    if draw(st.booleans()):  # promote, rollback with remove: stable takes all
        assume(members["stable"])
        return targets, Split.STABLE_ONLY, wanted, True
    return targets, draw(splits_for(members)), wanted, False


def plan_or_reject(
    targets: list[TargetState],
    split: Split,
    wanted: dict[str, list[str]],
    remove_others: bool,
    marks: Marks = LEASED,
) -> ChangePlan:
    try:
        return plan_change(
            targets,
            split,
            wanted,
            upstream_tags=("team=orders",),
            marks=marks,
            address_counts=None,
            force=True,
            remove_others=remove_others,
        )
    except (NoTargets, Unsplittable):
        assume(False)
        raise


def unforced(
    targets: list[TargetState], split: Split, wanted: dict[str, list[str]], remove: bool
) -> ChangePlan:
    """The plan as a caller without ``force`` gets it (health refusals apply)."""
    return plan_change(
        targets,
        split,
        wanted,
        upstream_tags=(),
        marks=LEASED,
        address_counts=None,
        remove_others=remove,
    )


def replay(targets: list[TargetState], writes: tuple[KongWrite, ...]):
    """Each intermediate state as Kong would have it: target -> (weight, tags)."""
    now = {t.target: (t.weight, t.tags) for t in targets}
    yield dict(now)
    for write in writes:
        if write.action == "create":
            assert write.target not in now, f"create of existing {write.target}"
            now[write.target] = (write.weight_after or 0, write.tags_after or ())
        elif write.action == "update":
            assert write.target in now, f"update of missing {write.target}"
            assert now[write.target][0] == write.weight_before
            # As the journal sends it: tags only when they change (a target the planner
            # writes twice is re-tagged by its first write).
            tags = write.tags_after if write.tags_after != write.tags_before else None
            now[write.target] = (write.weight_after or 0, tags or now[write.target][1])
        else:
            assert write.target in now, f"delete of missing {write.target}"
            del now[write.target]
        yield dict(now)


def known_total(kong: dict[str, tuple[int, tuple[str, ...]]], plan: ChangePlan) -> int:
    return sum(w for t, (w, _) in kong.items() if t in plan.variant_of)


@SANE
@given(changes())
def test_replaying_the_writes_should_end_at_the_planned_weights(change) -> None:
    targets, split, wanted, remove = change
    plan = plan_or_reject(targets, split, wanted, remove)
    *_, end = replay(targets, plan.writes)
    for target, weight in plan.weights.items():
        if target in end:
            assert end[target][0] == weight
        else:  # deleted: only baseline/canary targets, and only when asked
            assert remove and plan.variant_of[target] in ("baseline", "canary") and weight == 0
    assert plan.split == split


@SANE
@given(changes())
def test_no_write_should_give_a_target_weight_before_it_exists(change) -> None:
    """Creates are at weight 0, and all of them come before the first weight move."""
    targets, split, wanted, remove = change
    plan = plan_or_reject(targets, split, wanted, remove)
    creates = [i for i, w in enumerate(plan.writes) if w.action == "create"]
    moves = [
        i
        for i, w in enumerate(plan.writes)
        if w.action == "update" and w.weight_before != w.weight_after
    ]
    assert all(plan.writes[i].weight_after == 0 for i in creates)
    assert all(
        plan.writes[i].tags_after == managed_tags((), plan.writes[i].variant) for i in creates
    )
    if creates and moves:
        assert max(creates) < min(moves)


@SANE
@given(changes())
def test_deletes_should_come_last_and_only_of_weight_zero_targets(change) -> None:
    targets, split, wanted, remove = change
    plan = plan_or_reject(targets, split, wanted, remove)
    actions = [w.action for w in plan.writes]
    first_delete = actions.index("delete") if "delete" in actions else len(actions)
    assert all(a == "delete" for a in actions[first_delete:])
    assert remove or first_delete == len(actions)
    states = list(replay(targets, plan.writes))
    for index, write in enumerate(plan.writes):
        if write.action == "delete":
            assert states[index][write.target][0] == 0  # weight 0 when it goes
            assert write.variant in ("baseline", "canary")


@SANE
@given(changes())
def test_retags_should_carry_no_weight_change_and_come_first(change) -> None:
    """A write that changes only tags moves no traffic; it goes before every create and
    weight move, and every member ends with our variant and managed tags."""
    targets, split, wanted, remove = change
    plan = plan_or_reject(targets, split, wanted, remove)
    tag_only = [
        i
        for i, w in enumerate(plan.writes)
        if w.action == "update" and w.weight_before == w.weight_after
    ]
    for i in tag_only:
        write = plan.writes[i]
        assert write.tags_after != write.tags_before
    others = [i for i in range(len(plan.writes)) if i not in tag_only]
    if tag_only and others:
        assert max(tag_only) < min(others)
    *_, end = replay(targets, plan.writes)
    members = members_of(targets, wanted)
    for variant, names in members.items():
        for name in names:
            if name not in end:  # deleted at the end (remove_others)
                continue
            assert f"variant={variant}" in end[name][1]
            assert MANAGED_TAG in end[name][1]


@SANE
@given(changes())
def test_weights_should_never_all_be_zero_on_the_way(change) -> None:
    """Kong answers 503 "failure to get a peer from the ring-balancer" with no weight left
    (kong/runloop/balancer/init.lua); a split always asks for some traffic."""
    targets, split, wanted, remove = change
    plan = plan_or_reject(targets, split, wanted, remove)
    states = list(replay(targets, plan.writes))
    started_live = known_total(states[0], plan) > 0
    for kong in states[1:] if started_live else states[-1:]:
        assert known_total(kong, plan) > 0


@SANE
@given(changes(), st.booleans())
def test_a_lease_should_be_written_first_and_removed_last(change, leased) -> None:
    """A lease goes on before any write (traffic may leave stable: a crash then leaves a
    lease the sweeper honours); one that ends comes off after the writes."""
    targets, split, wanted, remove = change
    marks = LEASED if leased else UNLEASED
    plan = plan_or_reject(targets, split, wanted, remove, marks)
    assert plan.tags_change  # the upstream had none of our tags
    assert plan.lease_first is leased
    assert any(t.startswith("kong-canary-lease=") for t in plan.tags_after) is leased
    assert "team=orders" in plan.tags_after  # others' tags are kept


def test_an_unchanged_lease_should_write_no_tags() -> None:
    targets = [state("s0.svc:8000", 100)]
    tags = ("managed-by=kong-canary", "kong-canary-lease=2000000000")
    plan = plan_change(
        targets,
        Split.STABLE_ONLY,
        {},
        upstream_tags=tags,
        marks=LEASED,
        address_counts=None,
    )
    assert (plan.writes, plan.tags_change, plan.lease_first, plan.writes_anything) == (
        (),
        False,
        False,
        False,
    )


@SANE
@given(changes())
def test_a_target_of_an_unknown_variant_carrying_traffic_should_refuse_the_change(change) -> None:
    targets, split, wanted, remove = change
    odd = state("x9.svc:8000", 3, "experiment")
    with pytest.raises(UnknownVariantTarget):
        unforced([*targets, odd], split, wanted, remove)


@SANE
@given(changes())
def test_an_unhealthy_target_should_never_gain_share_unless_forced(change) -> None:
    targets, split, wanted, remove = change
    forced = plan_or_reject(targets, split, wanted, remove)
    before_total = sum(t.weight for t in targets) or 1
    after_total = sum(forced.weights.values()) or 1
    gainers = {
        t.target
        for t in targets
        if t.target in forced.weights
        and forced.weights[t.target] * before_total > t.weight * after_total
    }
    bad = [t for t in targets if t.target in gainers and t.health in ("UNHEALTHY", "DNS_ERROR")]
    try:
        unforced(targets, split, wanted, remove)
    except UnhealthyTarget as refused:
        assert bad
        assert refused.field == f"targets.{forced.variant_of[bad[0].target]}"
    else:
        assert not bad


def test_a_refusal_should_name_the_field_and_the_rule() -> None:
    targets = [state("s0.svc:8000", 100)]
    with pytest.raises(NoTargets) as refused:
        plan_change(
            targets,
            Split.from_percentages({"stable": 90, "baseline": 0, "canary": 10}),
            {},
            upstream_tags=(),
            marks=LEASED,
            address_counts=None,
        )
    assert refused.value.field == "targets.canary"
    assert isinstance(refused.value, Refusal)
    assert "no canary target" in refused.value.message


@SANE
@given(changes())
def test_batches_should_keep_the_plan_order_and_group_only_alike_writes(change) -> None:
    targets, split, wanted, remove = change
    plan = plan_or_reject(targets, split, wanted, remove)
    batches = write_batches(plan.writes)
    assert [w for batch in batches for w in batch] == list(plan.writes)
    for batch in batches:
        assert len({w.action for w in batch}) == 1
        moves = [w for w in batch if w.weight_before != w.weight_after and w.action == "update"]
        if moves:
            assert len(moves) == len(batch)
            assert len({w.variant for w in batch}) == 1
            ups = {(w.weight_after or 0) > (w.weight_before or 0) for w in batch}
            assert len(ups) == 1


def test_removing_targets_should_be_refused_unless_stable_takes_everything() -> None:
    """Deleting baseline and canary targets that the split gives traffic would send it
    nowhere; no caller asks this, and the plan refuses to build it."""
    targets = [state("s0.svc:8000", 90), state("c0.svc:8000", 10, "canary")]
    canary = Split.from_percentages({"stable": 90, "baseline": 0, "canary": 10})
    with pytest.raises(ValueError, match="stable-only"):
        plan_change(
            targets,
            canary,
            {},
            upstream_tags=(),
            marks=LEASED,
            address_counts=None,
            remove_others=True,
        )
