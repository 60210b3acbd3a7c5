"""ChangeJournal: a plan's writes applied, undone and reported, with a Kong that fails at
every position (cleanly, or with the answer lost after the write landed or before it)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.change import KongWrite, TargetState, managed_tags, plan_change, write_batches
from sidecar.core.lease import Marks
from sidecar.core.split import Split
from sidecar.errors import ApiError
from sidecar.journal import ChangeJournal
from sidecar.kong.errors import (
    KongConflict,
    KongError,
    KongNotFound,
    KongUnavailable,
    KongValidationError,
)
from sidecar.kong.models import Target

LEASED = Marks(managed=True, lease_until=2_000_000_000.0)
CANARY = Split.from_percentages({"stable": 90, "baseline": 5, "canary": 5})


class FakeKong:
    """Targets of one upstream; write number ``fail_at`` (0-based, counting every write)
    fails the way ``mode`` says, and with ``then_down`` every later target write fails too
    (the upstream's tags can still be written)."""

    def __init__(
        self, targets: Sequence[TargetState], fail_at: int = -1, mode: str = "clean"
    ) -> None:
        self.rows = {t.target: (t.weight, t.tags) for t in targets}
        self.fail_at = fail_at
        self.mode = mode
        self.then_down = False
        self.calls = 0
        self.upstream_tags: tuple[str, ...] = ()
        self.order: list[str] = []  # "tags" or "target", as written

    def _write(self, change, *, upstream: bool = False) -> Target | None:  # type: ignore[no-untyped-def]
        number, self.calls = self.calls, self.calls + 1
        down = self.then_down and number > self.fail_at >= 0 and not upstream
        if number == self.fail_at or down:
            if self.mode == "clean":
                raise KongValidationError("schema violation", status=400)
            if self.mode == "lost-after":
                change()
            raise KongUnavailable("timed out")
        return change()

    def create_target(
        self, upstream: str, target: str, weight: int, tags: Sequence[str] = ()
    ) -> Target:
        self.order.append("target")

        def change() -> Target:
            if target in self.rows:
                raise KongConflict("unique constraint violation", status=409)
            self.rows[target] = (weight, tuple(tags))
            return Target(f"id-{target}", target, weight, tuple(tags))

        return self._write(change)  # type: ignore[return-value]

    def update_target(
        self,
        upstream: str,
        target: str,
        *,
        weight: int | None = None,
        tags: Sequence[str] | None = None,
    ) -> Target:
        self.order.append("target")

        def change() -> Target:
            if target not in self.rows:
                raise KongNotFound("not found", status=404)
            old_weight, old_tags = self.rows[target]
            new = (
                old_weight if weight is None else weight,
                old_tags if tags is None else tuple(tags),
            )
            self.rows[target] = new
            return Target(f"id-{target}", target, *new)

        return self._write(change)  # type: ignore[return-value]

    def delete_target(self, upstream: str, target: str) -> None:
        self.order.append("target")

        def change() -> None:
            if target not in self.rows:
                raise KongNotFound("not found", status=404)
            del self.rows[target]

        self._write(change)

    def update_upstream(self, upstream: str, *, tags: Sequence[str]) -> None:
        def change() -> None:
            self.upstream_tags = tuple(tags)

        self.order.append("tags")
        self._write(change, upstream=True)  # ``then_down`` spares the upstream's tags

    def look(self) -> tuple[dict[str, int], dict[str, float] | None]:
        return {t: w for t, (w, _) in self.rows.items()}, None


def state(target: str, weight: int, variant: str, tags: tuple[str, ...] | None = None):
    tagged = managed_tags((), variant) if tags is None else tags
    return TargetState(target, f"id-{target}", weight, tagged, variant, tags is None)


# Kong before each change: an untagged stable target (re-tagged by the change), a stable
# target tagged by hand, a canary left at 0 by an earlier change.
BEFORE = [
    state("s0.svc:8000", 60, "stable", ()),
    state("s1.svc:8000", 40, "stable", ("variant=stable", "team=orders")),
    state("c0.svc:8000", 0, "canary"),
]
TO_CANARY = plan_change(
    BEFORE,
    CANARY,
    {"baseline": ["b0.svc:8000", "b1.svc:8000"], "canary": ["c1.svc:8000"]},
    upstream_tags=(),
    marks=LEASED,
    address_counts=None,
)
CANARY_STATE = [
    state(t, w, TO_CANARY.variant_of[t])
    for t, w in TO_CANARY.weights.items()
    if t not in ("s0.svc:8000", "s1.svc:8000")
] + [
    state("s0.svc:8000", TO_CANARY.weights["s0.svc:8000"], "stable"),
    # tagged by hand meanwhile, without our managed tag: the promote re-tags it
    state("s1.svc:8000", TO_CANARY.weights["s1.svc:8000"], "stable", ("variant=stable",)),
]
PROMOTE = plan_change(
    CANARY_STATE,
    Split.STABLE_ONLY,
    {},
    upstream_tags=(),
    marks=Marks(managed=True),
    address_counts=None,
    remove_others=True,
)
PLANS = {"to_canary": (BEFORE, TO_CANARY), "promote": (CANARY_STATE, PROMOTE)}
CASES = [
    (name, position, mode)
    for name, (_, plan) in PLANS.items()
    for position in range(len(plan.writes))
    for mode in ("clean", "lost-after", "lost-before")
]


def journal(kong: FakeKong, **options) -> ChangeJournal:  # type: ignore[no-untyped-def]
    return ChangeJournal(kong, "orders", look=kong.look, **options)


def sent_until(writes: Sequence[KongWrite], position: int, parallel: int = 8) -> int:
    """How many writes were sent when write ``position`` failed: its whole chunk goes out
    (a batch is sent ``parallel`` at a time), nothing after it."""
    sent = 0
    for batch in write_batches(writes):
        for start in range(0, len(batch), parallel):
            sent += len(batch[start : start + parallel])
            if sent > position:
                return sent
    raise AssertionError(position)


def test_the_plans_used_here_should_hold_every_kind_of_write() -> None:
    kinds = {(w.action, w.weight_before == w.weight_after) for w in TO_CANARY.writes}
    assert {("create", False), ("update", False)} <= kinds
    kinds = {(w.action, w.weight_before == w.weight_after) for w in PROMOTE.writes}
    assert {("update", True), ("update", False), ("delete", False)} <= kinds


@pytest.mark.parametrize("name", PLANS)
def test_applying_a_plan_should_leave_kong_at_its_weights(name: str) -> None:
    targets, plan = PLANS[name]
    kong = FakeKong(targets)
    written = journal(kong).apply(plan.writes, kong.look()[0])
    expected = {t: w for t, w in plan.weights.items() if t in kong.rows}
    assert kong.look()[0] == expected
    assert {t for t, e in written.items() if e is None} == {
        w.target for w in plan.writes if w.action == "delete"
    }
    for target, entity in written.items():
        if entity is not None:
            assert (entity.weight, entity.tags) == kong.rows[target]


@pytest.mark.parametrize(("name", "position", "mode"), CASES)
def test_a_write_failing_anywhere_should_be_undone_and_reported_consistent(
    name: str, position: int, mode: str
) -> None:
    targets, plan = PLANS[name]
    kong = FakeKong(targets, fail_at=position, mode=mode)
    before = dict(kong.rows)
    with pytest.raises(ApiError) as failed:
        journal(kong).apply(plan.writes, kong.look()[0])
    error = failed.value
    assert kong.rows == before  # weights and tags, every target back
    assert (error.code, error.status) == ("kong_write_failed", 502 if mode == "clean" else 503)
    ambiguous = mode != "clean"
    went_through = sent_until(plan.writes, position) - 1
    assert error.details == {
        "undone": went_through + ambiguous,
        "consistent": True,
        "current": None,
    }
    failed_write = plan.writes[position]
    assert f"({failed_write.action} {failed_write.target}) failed" in error.message
    if went_through == 0 and not ambiguous:
        assert "nothing had been written; Kong is unchanged" in error.message
    else:
        assert "Kong is back at the previous split" in error.message


@pytest.mark.parametrize(("name", "position", "mode"), CASES)
def test_a_kong_gone_after_a_failed_write_should_be_reported_inconsistent(
    name: str, position: int, mode: str
) -> None:
    targets, plan = PLANS[name]
    kong = FakeKong(targets, fail_at=position, mode=mode)
    kong.then_down = True  # the undo fails too

    def unreadable() -> tuple[dict[str, int], None]:
        raise ApiError(503, "kong_unavailable", "Kong is unavailable")

    with pytest.raises(ApiError) as failed:
        ChangeJournal(kong, "orders", look=unreadable).apply(plan.writes, kong.look()[0])
    details = failed.value.details or {}
    failing = sent_until(plan.writes, position) - position  # it and the rest of its chunk
    undone_attempts = position + (failing if mode != "clean" else 0)
    assert details["consistent"] is False
    assert details["current"] is None
    assert len(details.get("undo_errors", [])) == undone_attempts
    assert details["undone"] == 0
    if undone_attempts:
        assert "Kong could not be put back" in failed.value.message


def test_an_undo_that_fails_but_leaves_kong_as_before_is_still_inconsistent() -> None:
    """A failed undo is reported even when the weights read back match: its tags may not."""
    kong = FakeKong(BEFORE, fail_at=1, mode="clean")
    kong.then_down = True
    with pytest.raises(ApiError) as failed:
        journal(kong).apply(TO_CANARY.writes, kong.look()[0])
    assert (failed.value.details or {})["consistent"] is False


@pytest.mark.parametrize("lost_at", [0, 1, 2])
def test_losing_the_kong_lock_between_batches_should_undo_what_was_written(lost_at: int) -> None:
    kong = FakeKong(BEFORE)
    before = dict(kong.rows)
    calls = []

    def keep_lock() -> None:
        calls.append(len(calls))
        if len(calls) > lost_at:
            raise ApiError(409, "concurrent_change", "lock lost")

    with pytest.raises(ApiError) as lost:
        journal(kong, keep_lock=keep_lock).apply(TO_CANARY.writes, kong.look()[0])
    assert lost.value.code == "concurrent_change"
    assert kong.rows == before


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(PLANS)),
    st.data(),
    st.sampled_from(["clean", "lost-after", "lost-before"]),
    st.integers(1, 4),
)
def test_parallel_batches_should_undo_alike_whatever_fails(name, data, mode, parallel) -> None:
    """With a batch sent ``parallel`` at a time through a pool, a failure anywhere is still
    undone completely (every write that went through, and any whose answer was lost)."""
    targets, plan = PLANS[name]
    position = data.draw(st.integers(0, len(plan.writes) - 1))
    kong = FakeKong(targets, fail_at=position, mode=mode)
    before = dict(kong.rows)
    with ThreadPoolExecutor(4) as pool:
        change = journal(kong, fan_out=pool.map, parallel=parallel)
        with pytest.raises(ApiError) as failed:
            change.apply(plan.writes, kong.look()[0])
    assert kong.rows == before
    assert (failed.value.details or {})["consistent"] is True
    assert isinstance(failed.value.__cause__, KongError)


@pytest.mark.parametrize("name", PLANS)
def test_a_lease_should_be_tagged_before_the_target_writes_and_ended_after(name: str) -> None:
    """to_canary writes a lease (traffic leaves stable): its tags go first. promote ends
    it: the tags go once stable has everything again."""
    targets, plan = PLANS[name]
    kong = FakeKong(targets)
    kong.upstream_tags = plan.tags_before
    journal(kong).carry_out(plan, kong.look()[0])
    assert kong.upstream_tags == plan.tags_after
    assert kong.order.count("tags") == 1
    expected = 0 if name == "to_canary" else len(kong.order) - 1
    assert kong.order.index("tags") == expected


@pytest.mark.parametrize("position", range(len(TO_CANARY.writes)))
@pytest.mark.parametrize("down", [False, True])
def test_a_new_lease_should_go_only_if_kong_is_verifiably_back(position: int, down: bool) -> None:
    """Target write ``position`` fails: back at the old split, the lease just written is
    taken away; a half-applied canary (the undo failed too) keeps it for the sweeper."""
    kong = FakeKong(BEFORE, fail_at=position + 1, mode="clean")  # write 0 is the lease tag
    kong.then_down = down
    with pytest.raises(ApiError) as failed:
        journal(kong).carry_out(TO_CANARY, kong.look()[0])
    consistent = (failed.value.details or {})["consistent"]
    assert consistent is (not down or position == 0)  # down: consistent if nothing went in
    assert kong.upstream_tags == (() if consistent else TO_CANARY.tags_after)


def test_a_lease_tag_kong_refuses_should_write_no_target() -> None:
    kong = FakeKong(BEFORE, fail_at=0, mode="clean")
    before = dict(kong.rows)
    with pytest.raises(ApiError) as failed:
        journal(kong).carry_out(TO_CANARY, kong.look()[0])
    assert failed.value.code == "kong_validation"
    assert kong.rows == before
    assert kong.calls == 1
