"""Plan a traffic change: what to write to Kong, in which order, or why not (pure).

Split the way Argo Rollouts splits its reconciler from its traffic router
(``rollout/trafficrouting.go`` decides the weights, ``rollout/trafficrouting/*`` only carries
them out): ``plan_change`` decides everything from what Kong showed, and
``sidecar.journal.ChangeJournal`` carries the plan to Kong and undoes it on failure. Every
safety rule that used to live in the statement order of ``TrafficService._change`` is a
named step below, property-tested in ``tests/unit/core/test_core_change.py``:

1. ``refuse_unknown_variant_traffic``: a target tagged with a variant we do not know and
   carrying weight would keep traffic nobody can move.
2. ``members_of``: which targets make up each variant.
3. ``refuse_missing_members``: a variant given a share needs a target.
4. ``target_weights``: the weights (``core.weights``); targets that left a variant stay, at 0.
5. ``refuse_unhealthy_gains``: no unhealthy target gains share unless forced.
6. ``write_list``: tag-only writes first (no weight change), creates at weight 0, weight moves
   in ``core.plan.plan_writes``'s order (re-tags folded in), deletes last, at weight 0.
7. ``writes_lease_first``: a lease tag is written before traffic leaves stable; one that
   ends is removed after traffic is back (so a crash between leaves a lease the sweeper
   honours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sidecar.core.lease import Marks, write_marks
from sidecar.core.plan import plan_writes
from sidecar.core.refusals import NoTargets, UnhealthyTarget, UnknownVariantTarget, Unsplittable
from sidecar.core.split import VARIANTS, Split, SplitError
from sidecar.core.tags import MANAGED_TAG, VARIANT_TAG_PREFIX
from sidecar.core.weights import compute_weights

# Health values of a target that must not get more traffic, as Kong reports them
# (``kong/db/dao/targets.lua`` ``page_for_upstream_with_health``).
BAD_HEALTH = frozenset({"UNHEALTHY", "DNS_ERROR"})


def variant_from_tags(tags: Sequence[str]) -> str | None:
    for tag in tags:
        if tag.startswith(VARIANT_TAG_PREFIX):
            return tag[len(VARIANT_TAG_PREFIX) :]
    return None


def managed_tags(existing: Sequence[str], variant: str) -> tuple[str, ...]:
    """Our two tags, keeping whatever tags others put on the target."""
    kept = [t for t in existing if not t.startswith(VARIANT_TAG_PREFIX) and t != MANAGED_TAG]
    return (*kept, f"{VARIANT_TAG_PREFIX}{variant}", MANAGED_TAG)


@dataclass(frozen=True)
class TargetState:
    target: str
    id: str
    weight: int
    tags: tuple[str, ...]
    variant: str  # its variant tag's value ("stable" when untagged), maybe not one of VARIANTS
    tagged: bool  # False: an untagged target, counted as stable
    health: str | None = None
    addresses: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "id": self.id,
            "variant": self.variant,
            "weight": self.weight,
            "managed": self.tagged,
            "health": self.health,
            "addresses": list(self.addresses) if self.addresses is not None else None,
        }


@dataclass(frozen=True)
class KongWrite:
    action: str  # "create" | "update" | "delete"
    target: str
    variant: str
    weight_before: int | None
    weight_after: int | None
    tags_before: tuple[str, ...] | None = None
    tags_after: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "target": self.target,
            "variant": self.variant,
            "weight_before": self.weight_before,
            "weight_after": self.weight_after,
        }
        if self.tags_after is not None and self.tags_after != self.tags_before:
            out["tags"] = list(self.tags_after)
        return out


def split_of(weights: Mapping[str, int], variant_of: Mapping[str, str]) -> Split | None:
    per_variant = dict.fromkeys(VARIANTS, 0)
    for target, weight in weights.items():
        per_variant[variant_of[target]] += weight
    if not any(per_variant.values()):
        return None
    return Split.from_weights(per_variant)


@dataclass(frozen=True)
class ChangePlan:
    """Everything a change will do to Kong, decided before the first write."""

    previous: Split | None
    split: Split | None  # what the weights give (None: all zero)
    writes: tuple[KongWrite, ...]
    weights: Mapping[str, int]  # final weight of every target of a variant we know
    variant_of: Mapping[str, str]  # ... and its variant
    tags_before: tuple[str, ...]  # the upstream's tags
    tags_after: tuple[str, ...]
    lease_first: bool  # the upstream's tags are written before the target writes
    served: Mapping[str, int]  # the weights Kong's nodes must serve afterwards (propagation)

    @property
    def tags_change(self) -> bool:
        return set(self.tags_after) != set(self.tags_before)

    @property
    def writes_anything(self) -> bool:
        return bool(self.writes) or self.tags_change


# ---- the steps, in the order plan_change takes them ------------------------------------------
def refuse_unknown_variant_traffic(targets: Sequence[TargetState]) -> None:
    for t in targets:
        if t.variant not in VARIANTS and t.weight > 0:
            raise UnknownVariantTarget(
                f"target {t.target} is tagged variant={t.variant} and carries traffic; "
                "set its weight to 0 or tag it stable, baseline or canary",
            )


def members_of(
    targets: Sequence[TargetState], wanted: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Each variant's targets: those named in ``wanted``; untold, a variant keeps the targets
    carrying its traffic, and only when none does are all its tagged targets used (targets an
    earlier change dropped stay tagged at weight 0, and must not get traffic back by a later
    step)."""
    members: dict[str, list[str]] = {}
    for variant in VARIANTS:
        if variant in wanted:
            members[variant] = list(wanted[variant])
        else:
            tagged = [t for t in targets if t.variant == variant]
            live = [t.target for t in tagged if t.weight > 0]
            members[variant] = live or [t.target for t in tagged]
    return members


def refuse_missing_members(split: Split, members: Mapping[str, Sequence[str]]) -> None:
    for variant in VARIANTS:
        if getattr(split, variant) and not members[variant]:
            raise NoTargets(
                f"{variant} gets {split.percent(variant)}% but the upstream has no "
                f"{variant} target; name it in targets.{variant}",
                field=f"targets.{variant}",
            )


def target_weights(
    split: Split,
    targets: Sequence[TargetState],
    members: Mapping[str, Sequence[str]],
    address_counts: Mapping[str, int] | None,
) -> tuple[dict[str, int], dict[str, str]]:
    """The final weight and variant of every member, and of every target that left its
    variant's list (it keeps existing, at weight 0)."""
    existing = {t.target: t for t in targets}
    variant_of = {t: v for v, ts in members.items() for t in ts}
    dropped = [t.target for t in targets if t.variant in VARIANTS and t.target not in variant_of]
    current = {t: existing[t].weight for t in variant_of if t in existing}
    for t in dropped:
        current[t] = existing[t].weight
    try:
        weights = compute_weights(
            split, dict(members), current=current or None, address_counts=address_counts
        )
    except SplitError as exc:
        raise Unsplittable(str(exc), field=exc.field) from exc
    weights.update({t: 0 for t in dropped})
    return weights, {**variant_of, **{t: existing[t].variant for t in dropped}}


def refuse_unhealthy_gains(
    targets: Sequence[TargetState], weights: Mapping[str, int], variant_of: Mapping[str, str]
) -> None:
    """Compare shares, not weights: lowering stable alone moves traffic onto canary."""
    existing = {t.target: t for t in targets}
    total_before = sum(t.weight for t in targets) or 1
    total_after = sum(weights.values()) or 1
    for target, weight in weights.items():
        before = existing.get(target)
        if before is None or before.health not in BAD_HEALTH:
            continue
        if Fraction(weight, total_after) > Fraction(before.weight, total_before):
            raise UnhealthyTarget(
                f"Kong reports target {target} as {before.health}; refusing to shift "
                "traffic onto it (set force to override)",
                field=f"targets.{variant_of[target]}",
            )


def write_list(
    targets: Sequence[TargetState],
    members: Mapping[str, Sequence[str]],
    weights: Mapping[str, int],
    variant_of: Mapping[str, str],
    *,
    remove_others: bool,
    address_counts: Mapping[str, int] | None,
) -> list[KongWrite]:
    """Tag-only writes, creates at weight 0, weight moves, deletes at weight 0: in that
    order, so no write gives a target traffic before it exists with our tags, and nothing is
    deleted while it still carries traffic."""
    existing = {t.target: t for t in targets}
    member_of = {t: v for v, ts in members.items() for t in ts}
    creates = [
        KongWrite("create", target, variant, None, 0, None, managed_tags((), variant))
        for target, variant in member_of.items()
        if target not in existing
    ]
    retag = {
        t: managed_tags(existing[t].tags, v)
        for t, v in member_of.items()
        if t in existing and (existing[t].variant != v or MANAGED_TAG not in existing[t].tags)
    }
    start = {t: existing[t].weight if t in existing else 0 for t in variant_of}
    moves = []
    for step in plan_writes(start, weights, variant_of, address_counts=address_counts):
        before = existing.get(step.target)
        tags_before = before.tags if before else None
        moves.append(
            KongWrite(
                "update",
                step.target,
                step.variant,
                step.old if step.old is not None else 0,
                step.new,
                tags_before,
                retag.pop(step.target, None) or tags_before,
            )
        )
    # A re-tag whose target's weight does not move: no traffic changes, so it goes first
    # (newest first, as the list was always built).
    tag_only = [
        KongWrite(
            "update",
            target,
            variant_of[target],
            existing[target].weight,
            existing[target].weight,
            existing[target].tags,
            tags,
        )
        for target, tags in reversed(retag.items())
    ]
    deletes = (
        [
            KongWrite("delete", t.target, t.variant, 0, None, t.tags, None)
            for t in targets
            if t.variant in ("baseline", "canary")
        ]
        if remove_others
        else []
    )
    return [*tag_only, *creates, *moves, *deletes]


def landed_weights(
    targets: Sequence[TargetState], weights: Mapping[str, int], writes: Sequence[KongWrite]
) -> dict[str, int]:
    """The weight every target of ``weights`` has once ``writes`` are done: the planner may
    stop short of ``weights`` where every target's share is already the same
    (``core.plan.plan_writes``), and propagation must then wait for what Kong really holds."""
    existing = {t.target: t.weight for t in targets}
    landed = {t: existing.get(t, 0) for t in weights}
    for write in writes:
        if write.target in landed and write.weight_after is not None:
            landed[write.target] = write.weight_after
    return landed


def writes_lease_first(tags_before: Sequence[str], tags_after: Sequence[str], marks: Marks) -> bool:
    """The upstream's tags go first when they carry a lease (traffic may leave stable: a crash
    after must leave a lease the sweeper honours); otherwise last (a lease ends only once
    traffic is back)."""
    return set(tags_after) != set(tags_before) and marks.lease_until is not None


def plan_change(
    targets: Sequence[TargetState],
    split: Split,
    wanted: Mapping[str, Sequence[str]],
    *,
    upstream_tags: Sequence[str],
    marks: Marks,
    address_counts: Mapping[str, int] | None,
    force: bool = False,
    remove_others: bool = False,
) -> ChangePlan:
    """The change from Kong's ``targets`` (and the upstream's tags) to ``split``, with the
    members ``wanted`` per variant and the upstream's tags set to ``marks``; or a
    ``Refusal`` saying which rule it breaks. ``remove_others``: delete baseline and canary
    targets at the end (promote, rollback with ``remove``)."""
    if remove_others and split != Split.STABLE_ONLY:
        raise ValueError(
            "remove_others deletes baseline and canary: only with the stable-only split"
        )
    refuse_unknown_variant_traffic(targets)
    members = members_of(targets, wanted)
    refuse_missing_members(split, members)
    weights, variant_of = target_weights(split, targets, members, address_counts)
    if not force:
        refuse_unhealthy_gains(targets, weights, variant_of)
    writes = write_list(
        targets,
        members,
        weights,
        variant_of,
        remove_others=remove_others,
        address_counts=address_counts,
    )
    weights = landed_weights(targets, weights, writes)
    known = [t for t in targets if t.variant in VARIANTS]
    tags_before = tuple(upstream_tags)
    tags_after = write_marks(tags_before, marks)
    return ChangePlan(
        previous=split_of(
            {t.target: t.weight for t in known}, {t.target: t.variant for t in known}
        ),
        split=split_of(weights, variant_of),
        writes=tuple(writes),
        weights=weights,
        variant_of=variant_of,
        tags_before=tags_before,
        tags_after=tags_after,
        lease_first=writes_lease_first(tags_before, tags_after, marks),
        served={
            t: w for t, w in weights.items() if not remove_others or variant_of.get(t) == "stable"
        },
    )


# ---- carrying it out in groups -----------------------------------------------------------------
def _batch_key(write: KongWrite) -> tuple[str, ...]:
    if write.action != "update" or write.weight_before == write.weight_after:
        return (write.action if write.action != "update" else "tags",)
    direction = "up" if (write.weight_after or 0) > (write.weight_before or 0) else "down"
    return ("update", write.variant, direction)


def write_batches(writes: Sequence[KongWrite]) -> list[list[KongWrite]]:
    """Group consecutive writes that may go to Kong in any order and in parallel.

    Writes that move one variant's weight in one direction leave, in any subset, every
    variant's share between its values before and after the group (each share is monotone
    in that variant's total weight). Creates at weight 0, deletes of weight-0 targets and
    tag-only updates move no traffic at all. So the planner's order is kept between
    groups, and a group can be written concurrently.
    """
    batches: list[list[KongWrite]] = []
    for write in writes:
        if batches and _batch_key(batches[-1][-1]) == _batch_key(write):
            batches[-1].append(write)
        else:
            batches.append([write])
    return batches
