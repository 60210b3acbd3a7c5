"""The traffic service: read Kong, decide with the pure core, apply, and undo on failure.

No Flask here: the HTTP layer and the CLI call the same functions. Decisions
(weights, write order) come from ``sidecar.core``; this module only gathers the
facts they need and carries the result to Kong, one write at a time, keeping a
journal so a failure halfway is compensated instead of left half-applied.
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

from sidecar.core.lease import LeasePolicy, Marks, expired, read_marks, renewed, write_marks
from sidecar.core.plan import plan_writes
from sidecar.core.ring import RingAddress, predicted_addresses, variant_ring_shares
from sidecar.core.split import VARIANTS, Split, SplitError
from sidecar.core.tags import MANAGED_TAG, VARIANT_TAG_PREFIX
from sidecar.core.weights import compute_weights, variant_shares
from sidecar.errors import ApiError, from_kong_error
from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import (
    KongConflict,
    KongError,
    KongNotFound,
    KongProtocolError,
    KongUnavailable,
)
from sidecar.kong.models import Target, TargetHealth, Upstream, is_entity_id, normalise_target
from sidecar.upstream_locks import KongLock, KongLocks, LocalLocks

BAD_HEALTH = frozenset({"UNHEALTHY", "DNS_ERROR"})
INEXACT_ALGORITHMS = {
    "consistent-hashing": "consistent-hashing places targets on a hash ring: each target gets "
    "about weight/total of the ring's points, so small shares are coarse and per-key sticky",
    "least-connections": "least-connections picks by open connections per weight; weights "
    "do not give a proportional split",
    "latency": "the latency algorithm picks by response time; weights do not give a "
    "proportional split",
    "sticky-sessions": "sticky-sessions pins clients to targets; shares move only for new clients",
}


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


def split_of(weights: Mapping[str, int], variant_of: Mapping[str, str]) -> Split | None:
    per_variant = {v: 0 for v in VARIANTS}
    for target, weight in weights.items():
        per_variant[variant_of[target]] += weight
    if not any(per_variant.values()):
        return None
    return Split.from_weights(per_variant)


def percentages(split: Split | None) -> dict[str, float] | None:
    return None if split is None else split.as_percentages()


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
    ) -> None:
        self.kong = kong
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
        self._held = threading.local()  # .lock: the KongLock this thread holds
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
            with self.kong_locks.held(name, give_up - time.monotonic()) as lock:
                self._held.lock = lock
                try:
                    return attempt()
                except KongLockNeeded:  # renamed under us: the lock taken is not its
                    raise ApiError(
                        409,
                        "concurrent_change",
                        f"upstream {upstream!r} was renamed during the change; retry",
                    ) from None
                finally:
                    self._held.lock = None

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
                    addresses = tuple(f"{a.ip}:{a.port}" for a in row.addresses)
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
        shifted = Fraction(split.baseline + split.canary, 100)
        if shifted > self.max_shifted:
            raise ApiError(
                422,
                "ceiling_exceeded",
                f"canary + baseline would get {float(shifted)}%, above the ceiling of "
                f"{float(self.max_shifted)}% (max_shifted_percent)",
                field="split",
            )
        wanted = _normalise_members(targets or {})

        def attempt() -> ChangeResult:
            state = self.read(upstream)
            current = state.split()
            if expect is not None and current != expect and not _same(current, split):
                raise ApiError(
                    409,
                    "expect_mismatch",
                    "the upstream's split is not the expected one; read it again and retry",
                    field="expect",
                    details={"current": percentages(current), "expected": percentages(expect)},
                )
            marks = read_marks(state.upstream.tags)
            if owned_by is not None and (marks.ramp != owned_by or marks.ramp_canceled == owned_by):
                raise ApiError(
                    409,
                    "ramp_superseded",
                    "the ramp no longer owns the upstream (cancelled, rolled back or taken "
                    "over by another change)",
                )
            if split == Split.STABLE_ONLY:
                deadline = None
            else:
                try:
                    deadline = self.leases.deadline(self.wall_clock(), lease)
                except SplitError as exc:
                    raise ApiError(422, "invalid_lease", str(exc), field=exc.field) from None
            deadline = renewed(marks.lease_until, deadline, self.wall_clock())
            if ramp is None or ramp != marks.ramp:
                # another caller, or a new ramp: the old ramp's execution no longer owns it
                marks = marks.but(ramp_execution=ramp_execution)
            marks = marks.but(managed=True, lease_until=deadline, ramp=ramp)
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
        remove_others: bool = False,
        marks: Marks | None = None,
        operation: str = "set_split",
        wait: float | None = None,
    ) -> ChangeResult:
        started = self.clock()
        name = state.upstream.name
        existing = state.by_target()
        for t in state.targets:
            if t.variant not in VARIANTS and t.weight > 0:
                raise ApiError(
                    409,
                    "unknown_variant_target",
                    f"target {t.target} is tagged variant={t.variant} and carries traffic; "
                    "set its weight to 0 or tag it stable, baseline or canary",
                )
        members: dict[str, list[str]] = {}
        for variant in VARIANTS:
            if variant in wanted:
                members[variant] = list(wanted[variant])
            else:
                # Untold, a variant keeps the targets carrying its traffic; only when none
                # does are all its tagged targets used (targets an earlier change dropped
                # stay tagged at weight 0, and must not get traffic back by a later step).
                tagged = [t for t in state.targets if t.variant == variant]
                live = [t.target for t in tagged if t.weight > 0]
                members[variant] = live or [t.target for t in tagged]
        variant_of = {t: v for v, ts in members.items() for t in ts}
        for variant in VARIANTS:
            share = getattr(split, variant)
            if share and not members[variant]:
                raise ApiError(
                    422,
                    "no_targets",
                    f"{variant} gets {split.percent(variant)}% but the upstream has no "
                    f"{variant} target; name it in targets.{variant}",
                    field=f"targets.{variant}",
                )
        # Targets that left their variant's list keep existing, at weight 0.
        dropped = [
            t.target for t in state.targets if t.variant in VARIANTS and t.target not in variant_of
        ]
        current = {t: existing[t].weight for t in variant_of if t in existing}
        for t in dropped:
            current[t] = existing[t].weight
        try:
            desired = compute_weights(
                split, members, current=current or None, address_counts=state.address_counts()
            )
        except SplitError as exc:
            raise ApiError(422, "unsplittable", str(exc), field=exc.field) from exc
        desired.update({t: 0 for t in dropped})
        all_variants = {**variant_of, **{t: existing[t].variant for t in dropped}}

        if not force:
            # Compare shares, not weights: lowering stable alone moves traffic onto canary.
            total_before = sum(t.weight for t in state.targets) or 1
            total_after = sum(desired.values()) or 1
            for target, weight in desired.items():
                before = existing.get(target)
                gains = before is not None and Fraction(weight, total_after) > Fraction(
                    before.weight, total_before
                )
                if gains and before.health in BAD_HEALTH:
                    raise ApiError(
                        409,
                        "unhealthy_target",
                        f"Kong reports target {target} as {before.health}; refusing to shift "
                        "traffic onto it (set force to override)",
                        field=f"targets.{all_variants[target]}",
                    )

        writes: list[KongWrite] = []
        # 1. Create missing targets at weight 0: no traffic moves yet.
        for target, variant in variant_of.items():
            if target not in existing:
                writes.append(
                    KongWrite("create", target, variant, None, 0, None, managed_tags((), variant))
                )
        # 2. Re-tag targets whose variant or tags changed, folded into their weight write.
        retag = {
            t: managed_tags(existing[t].tags, v)
            for t, v in variant_of.items()
            if t in existing and (existing[t].variant != v or MANAGED_TAG not in existing[t].tags)
        }
        start = {t: existing[t].weight if t in existing else 0 for t in all_variants}
        planned = plan_writes(start, desired, all_variants, address_counts=state.address_counts())
        for step in planned:
            before = existing.get(step.target)
            writes.append(
                KongWrite(
                    "update",
                    step.target,
                    step.variant,
                    step.old if step.old is not None else 0,
                    step.new,
                    before.tags if before else None,
                    retag.pop(step.target, None) or (before.tags if before else None),
                )
            )
        for target, tags in retag.items():  # tags only: no traffic change, so any order
            before = existing[target]
            writes.insert(
                0,
                KongWrite(
                    "update",
                    target,
                    all_variants[target],
                    before.weight,
                    before.weight,
                    before.tags,
                    tags,
                ),
            )
        # 3. Deletions come last, when their weight is already 0.
        if remove_others:
            for t in state.targets:
                if t.variant in ("baseline", "canary"):
                    writes.append(KongWrite("delete", t.target, t.variant, 0, None, t.tags, None))

        previous = state.split()
        final_weights = {t: w for t, w in desired.items()}
        result = ChangeResult(
            upstream=name,
            previous=previous,
            split=split_of(final_weights, all_variants),
            writes=writes,
            dry_run=dry_run,
            warnings=self.warnings(state),
            lease_until=marks.lease_until if marks else read_marks(state.upstream.tags).lease_until,
        )
        tags_before = state.upstream.tags
        new_tags = write_marks(tags_before, marks) if marks is not None else tags_before
        tags_change = set(new_tags) != set(tags_before)
        # A lease is written before traffic leaves stable and removed after it is back, so
        # a crash in between always leaves a lease that the reaper will honour.
        lease_first = tags_change and marks is not None and marks.lease_until is not None
        if not dry_run:
            if writes or tags_change:
                self._writing(name)
                planned = ChangeEvent(name, operation, previous, result.split)
                for preparer in self.preparers:
                    result.warnings.extend(preparer(planned) or ())
            waiter = self.propagation if wait is not None else None
            before = waiter.before_write(name) if waiter and (writes or tags_change) else None
            if lease_first:
                self._set_upstream_tags(name, new_tags)
            written: dict[str, Target | None] = {}
            try:
                if writes:
                    written = self._apply(name, writes, state)
            except ApiError as exc:
                # Take the new lease away only if Kong is verifiably back where it was: a
                # half-applied canary must stay under a lease the sweeper will honour.
                if lease_first and (exc.details or {}).get("consistent"):
                    with contextlib.suppress(KongError):
                        self.kong.update_upstream(name, tags=list(tags_before))
                raise
            if tags_change and not lease_first:
                self._set_upstream_tags(name, new_tags)
            result.state = after_writes(state, written) if writes else state
            if writes or tags_change:
                result.state = self._read_back(result.state, new_tags)
            if waiter is not None and wait is not None:
                live = {
                    t: w
                    for t, w in desired.items()
                    if not remove_others or all_variants.get(t) == "stable"
                }
                result.pending_wait = partial(waiter.wait, name, live, wait, before)
            if writes or tags_change:
                event = ChangeEvent(name, operation, result.previous, result.split)
                for observer in self.observers:
                    result.warnings.extend(observer(event) or ())
        else:
            result.state = state
        result.duration_ms = (self.clock() - started) * 1000
        return result

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
            tuple(_target_state(row, health.get(row.target)) for row in rows),
            expected.health_known,
        )
        same = (
            actual.weights() == expected.weights()
            and actual.variant_of() == expected.variant_of()
            and read_marks(actual.upstream.tags) == read_marks(tags)
        )
        if not same:
            raise ApiError(
                409,
                "concurrent_change",
                f"Kong does not show the change just made to upstream {name!r}: something "
                "else changed it meanwhile; read the split and decide again",
                details={
                    "current": percentages(actual.split()),
                    "expected": percentages(expected.split()),
                },
            )
        return actual

    def _set_upstream_tags(self, upstream: str, tags: Sequence[str]) -> None:
        try:
            self.kong.update_upstream(upstream, tags=list(tags))
        except KongError as exc:
            raise from_kong_error(exc, upstream=upstream) from exc

    def _apply(
        self, upstream: str, writes: list[KongWrite], before: UpstreamState
    ) -> dict[str, Target | None]:
        """Send the writes batch by batch; a batch goes out in parallel (bounded). On the
        first failure everything already written is undone, newest first. Returns what Kong
        answered per target (None: deleted), so the result needs no second read."""
        done: list[KongWrite] = []
        written: dict[str, Target | None] = {}
        for batch in write_batches(writes):
            for start in range(0, len(batch), self.parallel_writes):
                chunk = batch[start : start + self.parallel_writes]
                try:
                    self._keep_lock()
                except ApiError:
                    self._undo(upstream, done)
                    raise
                if len(chunk) == 1:
                    outcomes = [self._try_send(upstream, chunk[0])]
                else:
                    outcomes = list(self._pool.map(lambda w: self._try_send(upstream, w), chunk))
                failed = []
                for write, (entity, error) in zip(chunk, outcomes, strict=True):
                    if error is None:
                        done.append(write)
                        written[write.target] = entity
                    else:
                        failed.append((write, error))
                if failed:
                    write, exc = failed[0]
                    # A write whose answer was lost (timeout, reset, garbled body, 5xx) may
                    # have been applied: undo it too (undoing is idempotent).
                    maybe_applied = [w for w, e in failed if _ambiguous(e)]
                    undo_failed = self._undo(upstream, done + maybe_applied)
                    raise self._half_applied(
                        upstream, write, exc, done, undo_failed, before, len(maybe_applied)
                    ) from exc
        return written

    def _try_send(self, upstream: str, write: KongWrite) -> tuple[Target | None, KongError | None]:
        try:
            return self._send(upstream, write), None
        except KongError as exc:
            return None, exc

    def _send(self, upstream: str, write: KongWrite) -> Target | None:
        if write.action == "create":
            return self.kong.create_target(
                upstream, write.target, write.weight_after or 0, write.tags_after or ()
            )
        if write.action == "update":
            tags = write.tags_after if write.tags_after != write.tags_before else None
            return self.kong.update_target(
                upstream, write.target, weight=write.weight_after, tags=tags
            )
        with contextlib.suppress(KongNotFound):  # already gone: the outcome asked for
            self.kong.delete_target(upstream, write.target)
        return None

    def _undo(self, upstream: str, done: list[KongWrite]) -> list[str]:
        failures = []
        for write in reversed(done):
            try:
                if write.action == "create":
                    with contextlib.suppress(KongNotFound):  # the create never happened
                        self.kong.delete_target(upstream, write.target)
                elif write.action == "update":
                    tags = write.tags_before if write.tags_after != write.tags_before else None
                    self.kong.update_target(
                        upstream, write.target, weight=write.weight_before, tags=tags
                    )
                else:
                    with contextlib.suppress(KongConflict):  # the delete never happened
                        self.kong.create_target(
                            upstream,
                            write.target,
                            write.weight_before or 0,
                            write.tags_before or (),
                        )
            except KongError as exc:
                failures.append(f"undo of {write.action} {write.target} failed: {exc}")
        return failures

    def _half_applied(
        self,
        upstream: str,
        failed: KongWrite,
        exc: KongError,
        done: list[KongWrite],
        undo_failed: list[str],
        before: UpstreamState,
        maybe_applied: int,
    ) -> ApiError:
        """Say what happened and what Kong shows now, judged by reading it back: a write
        whose answer was lost may or may not have landed, so only a read can tell."""
        api = from_kong_error(exc)
        status = api.status if api.status >= 500 else 502
        what = f"Kong write {len(done) + 1} ({failed.action} {failed.target}) failed: {exc}"
        try:
            after = self.read(upstream)
            consistent = after.weights() == before.weights() and not undo_failed
            now = percentages(after.split())
        except ApiError:
            consistent, now = False, None
        details: dict[str, Any] = {
            "undone": len(done) + maybe_applied - len(undo_failed),
            "consistent": consistent,
            "current": now,
        }
        if undo_failed:
            details["undo_errors"] = undo_failed
        if consistent:
            state = (
                "the writes already made were undone; Kong is back at the previous split"
                if done or maybe_applied
                else "nothing had been written; Kong is unchanged"
            )
        else:
            state = (
                f"Kong could not be put back; it now has split {now}: call rollback, or read "
                "the split and set it again (the lease still applies)"
            )
        return ApiError(
            status, "kong_write_failed", f"{what}; {state}", kong=api.kong, details=details
        )


def _ambiguous(exc: KongError) -> bool:
    """Did the write perhaps reach Kong's database although we got no clean answer?"""
    return exc.status is None or isinstance(exc, KongUnavailable | KongProtocolError)


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
                raise ApiError(
                    422, "invalid_target", f"{field_name}: {exc}", field=field_name
                ) from None
            if target in seen:
                raise ApiError(
                    422,
                    "duplicate_target",
                    f"{field_name}: {target} is already listed under targets.{seen[target]}",
                    field=field_name,
                )
            seen[target] = variant
            out[variant].append(target)
    return out


def _same(current: Split | None, wanted: Split) -> bool:
    return current == wanted
