"""The traffic service: read Kong, plan the change with the pure core, hand it to the journal.

No Flask here: the HTTP layer and the CLI call the same functions, and refusals are domain
errors (``core.refusals``; their statuses are ``sidecar.errors.REFUSALS``). Decisions
(weights, write order, what is refused) come from ``core.change.plan_change``; carrying the
writes to Kong, undoing them on failure and reporting a half-applied state is
``sidecar.journal.ChangeJournal``. This module gathers the facts (reads, locks), runs the
hooks (preparers, observers), orders the upstream's lease tag around the target writes as
the plan says, and reads the result back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from functools import partial
from typing import Any, Protocol

from sidecar.core.change import (
    BAD_HEALTH,
    ChangePlan,
    KongWrite,
    TargetState,
    plan_change,
    split_of,
    variant_from_tags,
)
from sidecar.core.change import write_batches as write_batches  # bench/split_api.py
from sidecar.core.lease import LeasePolicy, Marks, expired, read_marks, renewed
from sidecar.core.refusals import (
    CeilingExceeded,
    ConcurrentChange,
    DuplicateTarget,
    ExpectMismatch,
    InvalidLease,
    InvalidTarget,
    NotReady,
    RampSuperseded,
)
from sidecar.core.ring import RingAddress, predicted_addresses, variant_ring_shares
from sidecar.core.split import VARIANTS, Split, SplitError
from sidecar.core.tags import MANAGED_TAG
from sidecar.core.weights import variant_shares
from sidecar.errors import from_kong_error
from sidecar.journal import ChangeJournal
from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import (
    KongError,
    KongUnavailable,
)
from sidecar.kong.models import Target, TargetHealth, Upstream, is_entity_id, normalise_target
from sidecar.upstream_locks import KongLock, KongLocks, LocalLocks

INEXACT_ALGORITHMS = {
    "consistent-hashing": "consistent-hashing places targets on a hash ring: each target gets "
    "about weight/total of the ring's points, so small shares are coarse and per-key sticky",
    "least-connections": "least-connections picks by open connections per weight; weights "
    "do not give a proportional split",
    "latency": "the latency algorithm picks by response time; weights do not give a "
    "proportional split",
    "sticky-sessions": "sticky-sessions pins clients to targets; shares move only for new clients",
}


@dataclass(frozen=True)
class UpstreamState:
    upstream: Upstream
    targets: tuple[TargetState, ...]
    health_known: bool

    def by_target(self) -> dict[str, TargetState]:
        return {t.target: t for t in self.targets}

    def weights(self) -> dict[str, int]:
        return {t.target: t.weight for t in self.targets if t.variant in VARIANTS}

    def variant_of(self) -> dict[str, str]:
        return {t.target: t.variant for t in self.targets if t.variant in VARIANTS}

    def address_counts(self) -> dict[str, int] | None:
        if not self.health_known:
            return None
        return {t.target: max(1, len(t.addresses or ())) for t in self.targets}

    def split(self) -> Split | None:
        return split_of(self.weights(), self.variant_of())


def percentages(split: Split | None) -> dict[str, float] | None:
    return None if split is None else split.as_percentages()


@dataclass
class ChangeResult:
    upstream: str
    previous: Split | None
    split: Split | None
    writes: list[KongWrite]
    dry_run: bool
    state: UpstreamState | None = None
    warnings: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    lease_until: float | None = None
    propagation: dict[str, Any] | None = None
    pending_wait: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "previous": percentages(self.previous),
            "split": percentages(self.split),
            "lease": lease_json(self.lease_until),
            "dry_run": self.dry_run,
            "writes": [w.as_json() for w in self.writes],
            "targets": [t.as_json() for t in self.state.targets] if self.state else [],
            "warnings": self.warnings,
            "propagation": self.propagation,
            "duration_ms": round(self.duration_ms, 3),
        }


def lease_json(deadline: float | None) -> dict[str, Any] | None:
    if deadline is None:
        return None
    expires = datetime.fromtimestamp(int(deadline), UTC).isoformat().replace("+00:00", "Z")
    return {"expires_at": expires, "epoch": int(deadline)}


class PropagationWaiter(Protocol):
    """Waits until Kong's nodes serve the weights just written (``sidecar.propagation``).
    ``before_write`` notes what the cluster looks like before a write (hybrid: the data
    planes' config hashes); its answer goes back to ``wait`` as ``before``."""

    def before_write(self, upstream: str) -> Any: ...

    def wait(
        self, upstream: str, weights: Mapping[str, int], timeout: float, before: Any = None
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ChangeEvent:
    """Told to preparers before a change writes to Kong and to observers after it reached
    Kong (never for dry runs, refusals or changes that write nothing)."""

    upstream: str
    operation: str  # "set_split" | "rollback" | "promote"
    previous: Split | None
    split: Split | None


class NotYet(Exception):
    """Raised by a preparer whose precondition holds only ``seconds`` from now (the gateway
    window runs on every Kong worker only after Kong's own update interval). Nothing of the
    change is written yet: it releases the upstream's locks, waits, and plans again from a
    fresh read, so a rollback or a ramp's cancel of the same upstream never queues behind
    the wait (it goes first, and a ramp step planned again then finds itself superseded)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = max(0.0, seconds)


MAX_DEFERRALS = 20  # a preparer that keeps deferring (a clock gone wrong) ends the change


@dataclass(frozen=True)
class PlanInputs:
    """Everything ``plan_change`` decides from. It is pure, so equal inputs give the equal
    plan: the change planned again under the Kong lock, on a fresh read, reuses the plan of
    its probe (the same change without the lock, which only learnt that it writes) when
    Kong showed the same, and plans again when anything differs."""

    targets: tuple[TargetState, ...]
    split: Split
    wanted: Mapping[str, list[str]]
    upstream_tags: tuple[str, ...]
    marks: Marks
    address_counts: Mapping[str, int] | None
    force: bool
    remove_others: bool

    def plan(self) -> ChangePlan:
        return plan_change(
            self.targets,
            self.split,
            self.wanted,
            upstream_tags=self.upstream_tags,
            marks=self.marks,
            address_counts=self.address_counts,
            force=self.force,
            remove_others=self.remove_others,
        )


class KongLockNeeded(Exception):
    """Raised by a change about to write while the thread does not hold the upstream's Kong
    lock: ``_exclusively`` then takes it and runs the change again on a fresh read. Reads,
    refusals and no-op requests thus never write a lock to Kong (a repeated request stays
    write-free)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.upstream = upstream


class TrafficService:
    def __init__(
        self,
        kong: KongAdmin,
        *,
        max_shifted_percent: float = 50.0,
        locks: LocalLocks | None = None,
        kong_locks: KongLocks | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        lease_policy: LeasePolicy | None = None,
        parallel_writes: int = 8,
        propagation: PropagationWaiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kong = kong
        self.sleep = sleep
        self.parallel_writes = max(1, parallel_writes)
        # One pool per process for concurrent reads and parallel write batches.
        self._pool = ThreadPoolExecutor(max(4, self.parallel_writes), "kong-io")
        self.propagation = propagation
        # An observer may return warnings; they are added to the change's answer.
        self.observers: list[Callable[[ChangeEvent], Sequence[str] | None]] = []
        # A preparer runs under the upstream's locks after the change is planned and before
        # its first Kong write (e.g. something that must be in place before traffic moves,
        # or gone before the canary loses its weight). It may refuse the change by raising
        # (nothing of the change is written then) or return warnings for the answer.
        self.preparers: list[Callable[[ChangeEvent], Sequence[str] | None]] = []
        self._names: dict[str, str] = {}  # upstream id -> name, learnt from reads
        # Extra warnings for GET …/split, per upstream (each must be cheap and never raise).
        self.describe_warnings: list[Callable[[str], Sequence[str]]] = []
        self.max_shifted = Fraction(str(max_shifted_percent))
        self.locks = locks or LocalLocks()
        # Across workers and replicas: a lock entity in Kong, taken only to write.
        self.kong_locks = kong_locks or KongLocks(kong)
        # .lock: the KongLock this thread holds; .probed: its probe's (PlanInputs, ChangePlan)
        self._held = threading.local()
        self.clock = clock
        self.wall_clock = wall_clock
        self.leases = lease_policy or LeasePolicy()

    def close(self) -> None:
        """End the I/O threads (the Kong client is the caller's to close)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def hold(self, upstream: str) -> contextlib.AbstractContextManager[None]:
        """The in-process lock of an upstream, whether the caller named it by name or by id.
        Ids seen in earlier reads map to the name; an id seen for the first time is looked
        up once (Kong takes a UUID-shaped path segment as an id, never as a name)."""
        name = self._names.get(upstream)
        if name is None and is_entity_id(upstream):
            try:
                entity = self.kong.upstream(upstream)
            except KongError:
                pass  # the read under the lock reports it
            else:
                self._names[entity.id] = name = entity.name
        return self.locks.hold(name or upstream, self.kong_locks.wait)

    def _exclusively(self, upstream: str, attempt: Callable[[], ChangeResult]) -> ChangeResult:
        """``_locked``, again after each wait a preparer asked for (``NotYet``): the locks
        are not held while it waits."""
        for _ in range(MAX_DEFERRALS):
            try:
                return self._locked(upstream, attempt)
            except NotYet as later:
                self.sleep(later.seconds)
        raise NotReady(
            f"the change of {upstream!r} was deferred {MAX_DEFERRALS} times by a "
            "precondition that never held (see the log); nothing was moved – retry",
        )

    def _locked(self, upstream: str, attempt: Callable[[], ChangeResult]) -> ChangeResult:
        """Run a change under the upstream's in-process lock; if it turns out to write, run
        it again, on a fresh read, under the upstream's lock in Kong too (so no other worker
        or replica changes it meanwhile). A change that writes nothing needs no Kong lock:
        its answer is what Kong showed at its read."""
        give_up = time.monotonic() + self.kong_locks.wait  # one budget for both waits
        with self.hold(upstream):
            try:
                return attempt()
            except KongLockNeeded as needed:
                name = needed.upstream
            try:
                with self.kong_locks.held(name, give_up - time.monotonic()) as lock:
                    self._held.lock = lock
                    try:
                        return attempt()
                    except KongLockNeeded:  # renamed under us: the lock taken is not its
                        raise ConcurrentChange(
                            f"upstream {upstream!r} was renamed during the change; retry",
                        ) from None
                    finally:
                        self._held.lock = None
            finally:
                self._held.probed = None  # the probe's plan serves this change only

    @contextmanager
    def exclusive(self, upstream: str) -> Iterator[None]:
        """Both locks of the upstream around a write that is not a traffic change (the
        gateway window's plugins, opened and closed by hand), so it cannot interleave with a
        change whose observer opens or closes the same window. 404 for an unknown upstream."""
        give_up = time.monotonic() + self.kong_locks.wait
        with self.hold(upstream):
            try:
                name = self.kong.upstream(upstream).name
            except KongError as exc:
                raise from_kong_error(exc, upstream=upstream) from exc
            if not self.kong.info().writable:  # DB-less, data plane: nobody can write there
                yield
                return
            with self.kong_locks.held(name, give_up - time.monotonic()) as lock:
                self._held.lock = lock
                try:
                    yield
                finally:
                    self._held.lock = None

    def _writing(self, name: str) -> KongLock:
        """Called before the first Kong write of a change: the Kong lock this thread holds
        on ``name``, or KongLockNeeded (nothing has been written yet)."""
        lock: KongLock | None = getattr(self._held, "lock", None)
        if lock is None or lock.upstream != name:
            raise KongLockNeeded(name)
        return lock

    def _keep_lock(self) -> None:
        """Between write batches: renew the Kong lock if half of it is gone."""
        lock: KongLock | None = getattr(self._held, "lock", None)
        if lock is not None:
            self.kong_locks.renew(lock)

    # ---- reading -------------------------------------------------------------------------
    def read(self, upstream: str) -> UpstreamState:
        """The upstream, its targets and their health: two GETs at once.

        ``/health`` lists the same rows as ``/targets`` (both page ``page_for_upstream``,
        kong/api/routes/upstreams.lua), each with the node's health added, so it is the
        target list. Only when it fails (a node whose balancer errors) are the targets read
        on their own, without health."""
        health_call = self._pool.submit(self.kong.health, upstream)
        try:
            entity = self.kong.upstream(upstream)  # meanwhile, on this thread
        except KongError as exc:
            health_call.cancel()
            raise from_kong_error(exc, upstream=upstream) from exc
        self._names[entity.id] = entity.name
        rows: Sequence[Target | TargetHealth]
        try:
            rows = health_call.result().targets
        except KongError as health_error:
            if isinstance(health_error, KongUnavailable) and health_error.status is None:
                # no answer at all (timeout, refused): /targets would only wait as long again
                raise from_kong_error(health_error, upstream=upstream) from health_error
            try:
                rows = self.kong.targets(upstream)
            except KongError as exc:
                raise from_kong_error(exc, upstream=upstream) from exc
        targets = []
        health_known = False
        for row in rows:
            health: tuple[str | None, tuple[str, ...] | None] | None = None
            if isinstance(row, TargetHealth):
                addresses = None
                if row.addresses is not None:
                    addresses = tuple([f"{a.ip}:{a.port}" for a in row.addresses])
                    health_known = True
                health = (row.health, addresses)
            targets.append(_target_state(row, health))
        return UpstreamState(upstream=entity, targets=tuple(targets), health_known=health_known)

    def describe(self, upstream: str) -> dict[str, Any]:
        state = self.read(upstream)
        effective = effective_split(state)
        warnings = self.warnings(state, effective)
        warnings += [w for extra in self.describe_warnings for w in extra(upstream)]
        marks = read_marks(state.upstream.tags)
        return {
            "upstream": state.upstream.name,
            "algorithm": state.upstream.algorithm,
            "hash_on": state.upstream.hash_on,
            "split": percentages(state.split()),
            "effective_split": effective,
            "lease": lease_json(marks.lease_until),
            "ramp": marks.ramp,
            "targets": [t.as_json() for t in state.targets],
            "warnings": warnings,
        }

    def warnings(
        self, state: UpstreamState, effective: dict[str, float] | None = None
    ) -> list[str]:
        """``effective``: the state's effective split when the caller already has it."""
        out = []
        if state.upstream.algorithm in INEXACT_ALGORITHMS:
            out.append(f"weights are not exact: {INEXACT_ALGORITHMS[state.upstream.algorithm]}")
        if state.upstream.algorithm == "consistent-hashing":
            ring = effective if effective is not None else effective_split(state)
            if ring is not None:
                out.append(
                    "consistent-hashing ring (Kong's own construction) gives keys spread "
                    "evenly over the hash space: " + ", ".join(f"{v} {ring[v]}%" for v in VARIANTS)
                )
        for t in state.targets:
            if t.variant not in VARIANTS:
                out.append(
                    f"target {t.target} is tagged with unknown variant {t.variant!r} and is "
                    "not part of the split"
                )
            if t.addresses is not None and len(t.addresses) > 1:
                out.append(
                    f"target {t.target} resolves to {len(t.addresses)} addresses; Kong gives "
                    "each the full weight (see effective_split)"
                )
            if t.health in BAD_HEALTH and t.weight > 0:
                out.append(f"target {t.target} ({t.variant}) is {t.health} but has weight")
        if not state.health_known and state.targets:
            out.append(
                "Kong reported no balancer data for this upstream (no traffic yet, or a "
                "control plane): health and DNS fan-out are unknown"
            )
            out += _unpredictable(state)
        return out

    # ---- changing ------------------------------------------------------------------------
    def set_split(
        self,
        upstream: str,
        split: Split,
        *,
        targets: Mapping[str, Sequence[str]] | None = None,
        expect: Split | None = None,
        dry_run: bool = False,
        force: bool = False,
        lease: float | None = None,
        ramp: str | None = None,
        ramp_execution: str | None = None,
        wait: float | None = None,
        owned_by: str | None = None,
    ) -> ChangeResult:
        """Move the upstream to ``split``. A non-stable split gets a lease (``lease`` seconds,
        or the default); ``ramp`` is the fingerprint of the ramp making the call, and any
        other caller takes the upstream away from a running ramp. ``owned_by``: change only
        if that ramp still owns the upstream and was not cancelled (checked under the lock,
        so a ramp step cannot undo a cancel or rollback that just happened)."""
        if above_ceiling(split.baseline + split.canary, self.max_shifted):
            shifted = Fraction(split.baseline + split.canary, 100)
            raise CeilingExceeded(
                f"canary + baseline would get {float(shifted)}%, above the ceiling of "
                f"{float(self.max_shifted)}% (max_shifted_percent)",
                field="split",
            )
        wanted = _normalise_members(targets or {})

        def attempt() -> ChangeResult:
            state = self.read(upstream)
            if expect is not None:  # the split now is for this check only (the plan has it)
                current = state.split()
                if current != expect and not _same(current, split):
                    raise ExpectMismatch(
                        "the upstream's split is not the expected one; read it again and retry",
                        field="expect",
                        details={"current": percentages(current), "expected": percentages(expect)},
                    )
            marks = read_marks(state.upstream.tags)
            if owned_by is not None and (marks.ramp != owned_by or marks.ramp_canceled == owned_by):
                raise RampSuperseded(
                    "the ramp no longer owns the upstream (cancelled, rolled back or taken "
                    "over by another change)",
                )
            if split == Split.STABLE_ONLY:
                deadline = None
            else:
                try:
                    deadline = self.leases.deadline(self.wall_clock(), lease)
                except SplitError as exc:
                    raise InvalidLease(str(exc), field=exc.field) from None
            deadline = renewed(marks.lease_until, deadline, self.wall_clock())
            execution = marks.ramp_execution
            if ramp is None or ramp != marks.ramp:
                # another caller, or a new ramp: the old ramp's execution no longer owns it
                execution = ramp_execution
            marks = marks.but(
                managed=True, lease_until=deadline, ramp=ramp, ramp_execution=execution
            )
            return self._change(
                state,
                split,
                wanted,
                dry_run=dry_run,
                force=force,
                marks=marks,
                operation="set_split",
                wait=wait,
            )

        return self._propagated(self._exclusively(upstream, attempt))

    def rollback(
        self,
        upstream: str,
        *,
        remove: bool = False,
        dry_run: bool = False,
        cancel_ramp: str | None = None,
        wait: float | None = None,
        only_if_ramp: str | None = None,
        only_if_expired_at: float | None = None,
    ) -> ChangeResult | None:
        """Stable takes everything; never refused for health (it is the way out). The lease
        and any ramp's claim on the upstream end with it (the ramp is marked cancelled).

        The conditions are checked under the upstream's lock on what Kong shows then:
        ``only_if_ramp`` (a ramp's cancel) and ``only_if_expired_at`` (the lease sweeper)
        make the call do nothing and return None when they no longer hold, so a cancel cannot
        undo another execution's ramp and a sweep cannot undo a lease renewed meanwhile."""
        return self._to_stable(
            upstream,
            "rollback",
            remove=remove,
            force=True,
            dry_run=dry_run,
            wait=wait,
            cancels_ramp=True,
            cancel_ramp=cancel_ramp,
            only_if_ramp=only_if_ramp,
            only_if_expired_at=only_if_expired_at,
        )

    def promote(
        self,
        upstream: str,
        *,
        dry_run: bool = False,
        force: bool = False,
        wait: float | None = None,
    ) -> ChangeResult:
        """After the new version is on stable: stable 100%, canary and baseline removed."""
        result = self._to_stable(
            upstream, "promote", remove=True, force=force, dry_run=dry_run, wait=wait
        )
        assert result is not None  # unconditional
        return result

    def _to_stable(
        self,
        upstream: str,
        operation: str,
        *,
        remove: bool,
        force: bool,
        dry_run: bool,
        wait: float | None,
        cancels_ramp: bool = False,
        cancel_ramp: str | None = None,
        only_if_ramp: str | None = None,
        only_if_expired_at: float | None = None,
    ) -> ChangeResult | None:
        skipped = ChangeResult(upstream, None, None, [], dry_run)  # a condition no longer holds

        def attempt() -> ChangeResult:
            state = self.read(upstream)
            marks = read_marks(state.upstream.tags)
            if only_if_ramp is not None and marks.ramp != only_if_ramp:
                return skipped
            if only_if_expired_at is not None and not expired(marks, only_if_expired_at):
                return skipped
            canceled = marks.ramp_canceled
            if cancels_ramp:
                canceled = cancel_ramp or marks.ramp or marks.ramp_canceled
            marks = marks.but(
                managed=True,
                lease_until=None,
                ramp=None,
                ramp_canceled=canceled,
                ramp_execution=None,
            )
            return self._change(
                state,
                Split.STABLE_ONLY,
                {},
                dry_run=dry_run,
                force=force,
                remove_others=remove,
                marks=marks,
                operation=operation,
                wait=wait,
            )

        change = self._exclusively(upstream, attempt)
        return None if change is skipped else self._propagated(change)

    def set_hashing(self, upstream: str, fields: Mapping[str, Any], *, dry_run: bool = False):
        """Sticky canaries: Kong's hash_on settings. A non-``none`` hash_on forces
        consistent-hashing (and ``none`` round-robin), so the split becomes ring shares."""
        view: dict[str, Any] = {}

        def attempt() -> ChangeResult:
            before = self.read(upstream)
            changed = {
                k: v for k, v in fields.items() if getattr(before.upstream, k, object()) != v
            }
            if changed and not dry_run:
                self._writing(before.upstream.name)
                try:
                    self.kong.update_upstream(upstream, **fields)
                except KongError as exc:
                    raise from_kong_error(exc, upstream=upstream) from exc
            view.update(self.describe(upstream))  # read back: the answer is what Kong shows
            view["changed"] = sorted(changed) if changed else []
            view["dry_run"] = dry_run
            return ChangeResult(upstream, None, None, [], dry_run)

        self._exclusively(upstream, attempt)
        return view

    def managed_upstreams(self) -> list[Upstream]:
        """Upstreams this sidecar (any replica) has changed, found by their tag in Kong."""
        try:
            return [
                u for u in self.kong.upstreams(tagged=MANAGED_TAG) if read_marks(u.tags).managed
            ]
        except KongError as exc:
            raise from_kong_error(exc) from exc

    def _change(
        self,
        state: UpstreamState,
        split: Split,
        wanted: Mapping[str, list[str]],
        *,
        dry_run: bool,
        force: bool,
        marks: Marks,
        remove_others: bool = False,
        operation: str = "set_split",
        wait: float | None = None,
    ) -> ChangeResult:
        """Plan the change (``core.change.plan_change``: pure, refuses by raising), then
        carry it to Kong: the Kong lock, preparers, the lease tag around the target writes,
        the writes themselves, read-back, propagation and observers."""
        started = self.clock()
        name = state.upstream.name
        inputs = PlanInputs(
            state.targets,
            split,
            wanted,
            state.upstream.tags,
            marks,
            state.address_counts(),
            force,
            remove_others,
        )
        probed: tuple[PlanInputs, ChangePlan] | None = getattr(self._held, "probed", None)
        self._held.probed = None
        plan = probed[1] if probed is not None and probed[0] == inputs else inputs.plan()
        if not dry_run and plan.writes_anything:
            try:
                self._writing(name)  # before anything is written, even the lease tag
            except KongLockNeeded:
                self._held.probed = (inputs, plan)  # planned again only if Kong changed
                raise
        result = ChangeResult(
            upstream=name,
            previous=plan.previous,
            split=plan.split,
            writes=list(plan.writes),
            dry_run=dry_run,
            warnings=self.warnings(state),
            lease_until=marks.lease_until,
        )
        if dry_run:
            result.state = state
        elif plan.writes_anything:
            self._carry_out(state, plan, result, operation, wait)
        else:
            result.state = state
            if wait is not None and self.propagation is not None:
                result.pending_wait = partial(self.propagation.wait, name, plan.served, wait, None)
        result.duration_ms = (self.clock() - started) * 1000
        return result

    def _carry_out(
        self,
        state: UpstreamState,
        plan: ChangePlan,
        result: ChangeResult,
        operation: str,
        wait: float | None,
    ) -> None:
        """Write a plan that changes something, under the upstream's Kong lock."""
        name = state.upstream.name
        planned = ChangeEvent(name, operation, plan.previous, plan.split)
        for preparer in self.preparers:
            result.warnings.extend(preparer(planned) or ())
        waiter = self.propagation if wait is not None else None
        before = waiter.before_write(name) if waiter is not None else None
        journal = ChangeJournal(
            self.kong,
            name,
            look=partial(self._look, name),
            keep_lock=self._keep_lock,
            fan_out=self._pool.map,
            parallel=self.parallel_writes,
        )
        written = journal.carry_out(plan, state.weights())
        expected = after_writes(state, written) if plan.writes else state
        result.state = self._read_back(expected, plan.tags_after)
        if waiter is not None and wait is not None:
            result.pending_wait = partial(waiter.wait, name, plan.served, wait, before)
        event = ChangeEvent(name, operation, result.previous, result.split)
        for observer in self.observers:
            result.warnings.extend(observer(event) or ())

    @staticmethod
    def _propagated(result: ChangeResult) -> ChangeResult:
        """Wait for propagation (``wait``) after the upstream's lock is released: a wait of
        minutes must not hold up a rollback of the same upstream."""
        if result.pending_wait is not None:
            pending, result.pending_wait = result.pending_wait, None
            result.propagation = pending()
        return result

    def _read_back(self, expected: UpstreamState, tags: Sequence[str]) -> UpstreamState:
        """Kong as it is after the change, which must be what the change made: the answer
        (200) then says what Kong shows, not what we meant. Under the Kong lock no other
        sidecar writes; a difference means someone else (decK, a person) changed the
        upstream meanwhile, and is answered 409 with what Kong shows now."""
        name = expected.upstream.name
        rows_call = self._pool.submit(self.kong.targets, name)  # no health: it is known
        try:
            entity = self.kong.upstream(name)
            rows = rows_call.result()
        except KongError as exc:
            rows_call.cancel()
            raise from_kong_error(exc, upstream=name) from exc
        health = {t.target: (t.health, t.addresses) for t in expected.targets}
        actual = UpstreamState(
            entity,
            tuple([_target_state(row, health.get(row.target)) for row in rows]),
            expected.health_known,
        )
        same = (
            actual.weights() == expected.weights()
            and actual.variant_of() == expected.variant_of()
            and read_marks(actual.upstream.tags) == read_marks(tags)
        )
        if not same:
            raise ConcurrentChange(
                f"Kong does not show the change just made to upstream {name!r}: something "
                "else changed it meanwhile; read the split and decide again",
                details={
                    "current": percentages(actual.split()),
                    "expected": percentages(expected.split()),
                },
            )
        return actual

    def _look(self, upstream: str) -> tuple[dict[str, int], dict[str, float] | None]:
        """Kong's weights and split now (the journal's read after a failed write)."""
        now = self.read(upstream)
        return now.weights(), percentages(now.split())


def after_writes(state: UpstreamState, written: Mapping[str, Target | None]) -> UpstreamState:
    """The upstream as Kong's write answers left it; health is carried over (new targets
    have none yet). Saves re-reading the upstream after every change."""
    targets = []
    for t in state.targets:
        if t.target not in written:
            targets.append(t)
        elif (entity := written[t.target]) is not None:
            targets.append(_target_state(entity, (t.health, t.addresses)))
    known = {t.target for t in state.targets}
    for target, entity in written.items():
        if entity is not None and target not in known:
            targets.append(_target_state(entity, None))
    return UpstreamState(state.upstream, tuple(targets), state.health_known)


def above_ceiling(shifted_hundredths: int, ceiling_percent: Fraction) -> bool:
    """``Fraction(shifted_hundredths, 100) > ceiling_percent``, cross-multiplied in integers:
    the same answer without building and comparing Fractions on every change."""
    return shifted_hundredths * ceiling_percent.denominator > ceiling_percent.numerator * 100


def effective_split(state: UpstreamState) -> dict[str, float] | None:
    """The split traffic really gets: round-robin weights per resolved address, or the
    share of Kong's hash ring each variant owns under consistent-hashing. None when all
    weights are 0, or when Kong has no balancer data yet (3.x builds it on the first proxied
    request) and a target with weight is a hostname: then only DNS knows its addresses. IP
    targets are their own addresses, so without balancer data they still predict it
    (``core.ring.predicted_addresses``; issue 13 item 15)."""
    if not any(state.weights().values()):
        return None
    members = [t for t in state.targets if t.variant in VARIANTS]
    if state.health_known:
        addresses = []
        for t in members:
            for address in t.addresses or ():
                ip, _, port = address.rpartition(":")
                addresses.append(RingAddress(t.target, ip.strip("[]"), int(port), t.weight))
        counts = state.address_counts()
    else:
        addresses, unknown = predicted_addresses([(t.target, t.weight) for t in members])
        if unknown:
            return None
        counts = dict.fromkeys(state.variant_of(), 1)
    if state.upstream.algorithm == "consistent-hashing":
        if not addresses:
            return None
        shares = variant_ring_shares(
            addresses, state.variant_of(), len(state.targets), state.upstream.slots
        )
    else:
        if counts is None:
            return None
        shares = variant_shares(state.weights(), state.variant_of(), counts)
    return {v: round(float(shares.get(v, 0) * 100), 2) for v in VARIANTS}


def _unpredictable(state: UpstreamState) -> list[str]:
    """Why effective_split is null without balancer data: the weighted hostname targets."""
    members = [(t.target, t.weight) for t in state.targets if t.variant in VARIANTS]
    _, unknown = predicted_addresses(members)
    if not unknown:
        return ["effective_split is predicted from the IP targets (their own addresses)"]
    return [
        "effective_split is unknown until Kong resolves hostname target(s) "
        f"{', '.join(unknown)} (its balancer exists after the first proxied request)"
    ]


def _target_state(
    target: Target | TargetHealth, health: tuple[str | None, tuple[str, ...] | None] | None
) -> TargetState:
    variant = variant_from_tags(target.tags)
    return TargetState(
        target=target.target,
        id=target.id,
        weight=target.weight,
        tags=target.tags,
        variant=variant or "stable",
        tagged=variant is not None,
        health=health[0] if health else None,
        addresses=health[1] if health else None,
    )


def _normalise_members(targets: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for variant, items in targets.items():
        out[variant] = []
        for index, raw in enumerate(items):
            field_name = f"targets.{variant}[{index}]"
            try:
                target = normalise_target(raw)
            except ValueError as exc:
                raise InvalidTarget(f"{field_name}: {exc}", field=field_name) from None
            if target in seen:
                raise DuplicateTarget(
                    f"{field_name}: {target} is already listed under targets.{seen[target]}",
                    field=field_name,
                )
            seen[target] = variant
            out[variant].append(target)
    return out


def _same(current: Split | None, wanted: Split) -> bool:
    return current == wanted
