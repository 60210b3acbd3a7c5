"""Progressive ramps, driven by whoever asks for their status.

Design (why no background worker and no store): the ramp id *is* the schedule, signed
(``core.ramp_token``). Orca polls the status URL every second, then every 15 s; each poll,
on whichever replica it lands, computes the step due now (``core.ramp``) and, if Kong is
still at an earlier step of this ramp, moves it on. So a killed replica loses nothing, and
replicas can only ever push an upstream the same way: towards the step the clock says.

Kong holds the rest, as upstream tags (``core.lease``): which ramp owns the upstream (a
later split, rollback or ramp takes it over, and this ramp then reports FAILED), whether
it was cancelled, and the lease. If nobody polls any more (the pipeline died), the ramp
stalls at its current step and the lease returns the upstream to stable.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.core.lease import execution_hash, read_marks
from sidecar.core.ramp import RampSchedule, RampStep, unequal_steps
from sidecar.core.ramp_token import RampTokenError, decode, encode, short_id
from sidecar.core.refusals import (
    CeilingExceeded,
    ExpectMismatch,
    InvalidLease,
    InvalidRamp,
    NoRamp,
    RampSuperseded,
    StartInPast,
    UnequalShares,
    UnknownRamp,
)
from sidecar.core.split import Split, SplitError
from sidecar.served import ServedCheck
from sidecar.traffic import TrafficService, UpstreamState, percentages

RUNNING, SUCCEEDED, FAILED, CANCELED = "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"


@dataclass(frozen=True)
class Decision:
    """What a ramp is, and what (if anything) to write to Kong now."""

    status: str
    apply: Split | None
    message: str


def decide(
    schedule: RampSchedule,
    fingerprint: str,
    now: float,
    current: Split | None,
    owner: str | None,
    canceled: str | None,
    origin: Split | None,
) -> Decision:
    """Pure: the ramp's status given the clock and what Kong shows."""
    if canceled == fingerprint:
        return Decision(CANCELED, None, "the ramp was cancelled and the canary rolled back")
    index = schedule.step_index(now)
    last = len(schedule.steps) - 1
    if owner != fingerprint:
        if index == last and current == schedule.target() and owner is None:
            return Decision(SUCCEEDED, None, f"ramp complete at {schedule.target()}")
        return Decision(
            FAILED,
            None,
            "another change took the upstream over (a split, rollback or ramp made outside "
            "this ramp)",
        )
    if index < 0:
        # A linear ramp's first move is one interval after its start: say which step waits,
        # not "the start", which Orca would show for a ramp that has started.
        first = f"step 1/{last + 1} ({schedule.steps[0].split})"
        waiting = first if now >= schedule.start_at else "the start"
        return Decision(RUNNING, None, f"waiting for {waiting}; Kong stays at {current}")
    due = schedule.steps[index].split
    if current == due:
        if index == last:
            return Decision(SUCCEEDED, None, f"ramp complete at {due}")
        return Decision(RUNNING, None, f"step {index + 1}/{last + 1} at {due}")
    known = {s.split for s in schedule.steps[: index + 1]}
    if origin is not None:
        known.add(origin)
    if current in known:
        status = SUCCEEDED if index == last else RUNNING
        return Decision(status, due, f"step {index + 1}/{last + 1}: moving to {due}")
    return Decision(
        FAILED,
        None,
        f"the split changed outside the ramp: Kong has {current}, the ramp expected {due}",
    )


@dataclass(frozen=True)
class RampView:
    id: str
    upstream: str
    status: str
    progress: int
    split: Split | None
    target: Split
    message: str
    next_step_at: float | None
    propagation: dict[str, Any] | None = None  # when this call applied a step and waited

    def as_json(self, urls: Mapping[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "upstream": self.upstream,
            "status": self.status,
            "progress": self.progress,
            "split": percentages(self.split),
            "target": percentages(self.target),
            "message": self.message,
            "next_step_at": self.next_step_at,
        }
        if self.propagation is not None:
            out["propagation"] = self.propagation
        out.update(urls or {})
        return out


class RampService:
    def __init__(
        self,
        traffic: TrafficService,
        *,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        served: ServedCheck | None = None,
    ) -> None:
        self.traffic = traffic
        self.secret = secret
        self.clock = clock
        # None: ramps move on by the clock alone (nothing looks at Kong's other nodes)
        self.served = served

    def start(
        self,
        upstream: str,
        steps: Sequence[RampStep],
        *,
        start_at: float | None = None,
        lease: float | None = None,
        targets: Mapping[str, Sequence[str]] | None = None,
        allow_unequal: bool = False,
        execution_id: str | None = None,
        wait: float | None = None,
    ) -> RampView:
        if not allow_unequal and unequal_steps(tuple(steps)):
            index = unequal_steps(tuple(steps))[0]
            raise UnequalShares(
                f"step {index + 1} gives canary and baseline different shares; Kayenta "
                "compares them, so keep them equal or set allow_unequal",
                field="schedule",
            )
        now = self.clock()
        if start_at is not None and start_at < now - 60:
            raise StartInPast(
                "start_at is in the past: the ramp would jump straight to a late step",
                field="start_at",
            )
        state = self.traffic.read(upstream)
        try:
            schedule = RampSchedule(
                upstream=upstream,
                start_at=now if start_at is None else start_at,
                steps=tuple(steps),
                lease=lease,
                nonce=secrets.token_hex(4),
                origin=state.split(),
            )
        except SplitError as exc:
            raise InvalidRamp(str(exc), field=exc.field) from None
        longest_wait = max(
            [b.offset - a.offset for a, b in zip(schedule.steps, schedule.steps[1:], strict=False)]
            + [max(0.0, schedule.start_at - now) + schedule.steps[0].offset]
        )
        leases = self.traffic.leases
        try:
            lease_seconds = leases.seconds(lease)
        except SplitError as exc:
            raise InvalidLease(str(exc), field=exc.field) from None
        if lease_seconds + longest_wait > leases.maximum:
            raise InvalidLease(
                f"lease + the longest wait between steps ({longest_wait:g} s) exceeds the "
                f"lease maximum of {leases.maximum:g} s",
                field="lease",
            )
        for step in schedule.steps:  # refuse now rather than fail halfway through the ramp
            shifted = step.split.baseline + step.split.canary
            if shifted > self.traffic.max_shifted * 100:
                raise CeilingExceeded(
                    f"a step gives canary + baseline {shifted / 100}%, above the ceiling "
                    f"of {float(self.traffic.max_shifted)}% (max_shifted_percent)",
                    field="split",
                )
        token = encode(schedule, self.secret)
        fingerprint = short_id(token)
        first = schedule.steps[0].split if schedule.step_index(now) >= 0 else state.split()
        # Claim the upstream (and apply the first step if it is due): from here on, a
        # split made by anyone else takes it away from this ramp.
        claimed = self.traffic.set_split(
            upstream,
            first or Split.STABLE_ONLY,
            targets=targets,
            lease=self._lease_for(schedule, now),
            ramp=fingerprint,
            ramp_execution=execution_hash(execution_id) if execution_id else None,
            wait=wait,
        )
        return dataclasses.replace(self.status(token), propagation=claimed.propagation)

    def status(self, token: str, wait: float | None = None, *, drive: bool = True) -> RampView:
        """Status for Orca's poll; moves the upstream on when a step is due (and then, with
        ``wait``, waits until Kong's nodes serve it). ``drive=False`` (a read-only caller)
        reports the same status without writing."""
        schedule = self._decode(token)
        fingerprint = short_id(token)
        now = self.clock()
        with self.traffic.hold(schedule.upstream):
            state = self.traffic.read(schedule.upstream)
            marks = read_marks(state.upstream.tags)
            current = state.split()
            decision = decide(
                schedule,
                fingerprint,
                now,
                current,
                marks.ramp,
                marks.ramp_canceled,
                schedule.origin,
            )
        propagation = None
        gated = self._gate(schedule, decision, state, now)
        if gated is not None:
            decision, propagation = gated
        if decision.apply is not None and drive:
            try:
                result = self.traffic.set_split(
                    schedule.upstream,
                    decision.apply,
                    expect=current,
                    lease=self._lease_for(schedule, now),
                    ramp=fingerprint,
                    wait=wait,
                    owned_by=fingerprint,
                )
            except (RampSuperseded, ExpectMismatch):
                # Cancelled, rolled back or taken over between our look and our write:
                # that change wins; report it as the next poll would.
                return self.status(token, wait, drive=False)
            current = result.split
            propagation = result.propagation
            if decision.status == SUCCEEDED:  # the last step: complete once it is served
                decision, propagation = self._unless_served(
                    schedule,
                    dataclasses.replace(decision, apply=None),
                    result.state,
                    propagation,
                    now,
                )
        return RampView(
            id=token,
            upstream=schedule.upstream,
            status=decision.status,
            progress=100 if decision.status == SUCCEEDED else schedule.progress(now),
            split=current,
            target=schedule.target(),
            message=decision.message,
            next_step_at=schedule.next_change_at(now),
            propagation=propagation,
        )

    def _gate(
        self, schedule: RampSchedule, decision: Decision, state: UpstreamState, now: float
    ) -> tuple[Decision, dict[str, Any] | None] | None:
        """A ramp moves on, completes or reports its cancel only once Kong's nodes serve
        where it is: the next step waits for the current one to be traffic everywhere
        checkable (Kayenta judges what nodes route, not what the database holds)."""
        if self.served is None or (
            decision.apply is None and decision.status not in (SUCCEEDED, CANCELED)
        ):
            return None
        return self._unless_served(schedule, decision, state, None, now)

    def _unless_served(
        self,
        schedule: RampSchedule,
        decision: Decision,
        state: UpstreamState | None,
        propagation: dict[str, Any] | None,
        now: float,
    ) -> tuple[Decision, dict[str, Any] | None]:
        if self.served is None or (propagation is not None and propagation["confirmed"]):
            return decision, propagation
        index = schedule.step_index(now)
        since = schedule.start_at + schedule.steps[index].offset if index >= 0 else None
        state, look = self.served.look(schedule.upstream, state=state, since=since)
        if look is None or look["confirmed"]:
            return decision, look
        if decision.status == CANCELED:
            what = "cancelled and rolled back; waiting until Kong's nodes stop canary traffic"
        elif decision.apply is not None:
            what = f"at {state.split()}; the next step waits until Kong's nodes serve it"
        else:
            what = f"at its target {state.split()}; waiting until Kong's nodes serve it"
        return Decision(RUNNING, None, f"{what}: {look['message']}"), look

    def cancel(self, token: str, wait: float | None = None) -> RampView:
        """Stop the ramp and roll the canary back – unless another change has taken the
        upstream over, which is then not ours to undo. ``wait``: as a rollback's."""
        schedule = self._decode(token)
        fingerprint = short_id(token)
        result = self.traffic.rollback(
            schedule.upstream, cancel_ramp=fingerprint, only_if_ramp=fingerprint, wait=wait
        )
        state = self.traffic.read(schedule.upstream)
        marks = read_marks(state.upstream.tags)
        if result is not None:
            message = "cancelled: the canary was rolled back, stable has all traffic"
            split = result.split
        elif marks.ramp_canceled == fingerprint:
            message, split = "already cancelled", state.split()
        else:
            message = (
                "not rolled back: the upstream is no longer driven by this ramp (a later "
                "split, rollback or ramp took it over)"
            )
            split = state.split()
        return RampView(
            id=token,
            upstream=schedule.upstream,
            status=CANCELED,
            progress=schedule.progress(self.clock()),
            split=split,
            target=schedule.target(),
            message=message,
            next_step_at=None,
            propagation=result.propagation if result is not None else None,
        )

    def cancel_on_upstream(
        self, upstream: str, execution_id: str | None, wait: float | None = None
    ) -> dict[str, Any]:
        """Orca's cancel hook cannot know the ramp id (it is evaluated before the ramp
        starts), so it names the upstream and its execution; only a ramp started by that
        execution is cancelled."""
        state = self.traffic.read(upstream)
        marks = read_marks(state.upstream.tags)
        if marks.ramp is None:
            raise NoRamp(f"no ramp is running on upstream {upstream!r}")
        if execution_id is not None and marks.ramp_execution != execution_hash(execution_id):
            raise NoRamp(
                f"the ramp running on {upstream!r} was not started by execution "
                f"{execution_id!r}; leaving it alone",
                field="context.execution_id",
            )
        result = self.traffic.rollback(
            upstream, cancel_ramp=marks.ramp, only_if_ramp=marks.ramp, wait=wait
        )
        if result is None:  # another change took the upstream over since we looked
            raise NoRamp(f"the ramp on {upstream!r} ended before it could be cancelled")
        return {
            "upstream": upstream,
            "status": CANCELED,
            "split": percentages(result.split),
            "message": "cancelled: the canary was rolled back, stable has all traffic",
            "propagation": result.propagation,
        }

    def upstream_of(self, token: str) -> str:
        """The upstream a ramp drives (404 for an id this deployment did not sign)."""
        return self._decode(token).upstream

    def _decode(self, token: str) -> RampSchedule:
        try:
            return decode(token, self.secret)
        except RampTokenError as exc:
            raise UnknownRamp(str(exc), field="id") from None

    def _lease_for(self, schedule: RampSchedule, now: float) -> float:
        """A step's split must outlive the wait for the next step: lease + time to it."""
        next_at = schedule.next_change_at(now)
        lease = schedule.lease or self.traffic.leases.default
        return lease + max(0.0, (next_at or now) - now)
