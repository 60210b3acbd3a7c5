"""The journal: carry a plan's target writes to Kong, undo them on failure, say what is left.

``core.change.plan_change`` decides the writes and their order; this class only sends them
(batch by batch, a batch in parallel), remembers what went through and, on the first
failure, undoes it newest first and reports, from a fresh read, whether Kong is back where it
was. A write whose answer was lost (timeout, reset, garbled body, 5xx) may have landed, so
it is undone too: undoing is idempotent (a create undone is a delete that tolerates 404, a
delete undone is a create that tolerates 409).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from sidecar.core.change import ChangePlan, KongWrite, write_batches
from sidecar.errors import ApiError, from_kong_error
from sidecar.kong.errors import (
    KongConflict,
    KongError,
    KongNotFound,
    KongProtocolError,
    KongUnavailable,
)
from sidecar.kong.models import Target

Outcome = tuple[Target | None, KongError | None]


class TargetWriter(Protocol):
    """The writes of ``sidecar.kong.client.KongAdmin`` the journal uses."""

    def create_target(
        self, upstream: str, target: str, weight: int, tags: Sequence[str] = ()
    ) -> Target: ...

    def update_target(
        self,
        upstream: str,
        target: str,
        *,
        weight: int | None = None,
        tags: Sequence[str] | None = None,
    ) -> Target: ...

    def delete_target(self, upstream: str, target: str) -> None: ...

    def update_upstream(self, upstream: str, **fields: Any) -> Any: ...


def ambiguous(exc: KongError) -> bool:
    """Did the write perhaps reach Kong's database although we got no clean answer?"""
    return exc.status is None or isinstance(exc, KongUnavailable | KongProtocolError)


class ChangeJournal:
    """Applies one change's writes to one upstream, and undoes them if one fails.

    ``look`` reads Kong now: the weights of its targets and the split they give (as
    percentages), or raises ``ApiError``. ``keep_lock`` runs before every batch (renewing
    the upstream's Kong lock; it may raise ``ApiError``, and what was written is undone).
    ``fan_out`` maps a function over a batch's writes (the service's thread pool)."""

    def __init__(
        self,
        writer: TargetWriter,
        upstream: str,
        *,
        look: Callable[[], tuple[Mapping[str, int], dict[str, float] | None]],
        keep_lock: Callable[[], None] = lambda: None,
        fan_out: Callable[[Callable[[KongWrite], Outcome], list[KongWrite]], Iterable[Outcome]]
        | None = None,
        parallel: int = 8,
    ) -> None:
        self.writer = writer
        self.upstream = upstream
        self.look = look
        self.keep_lock = keep_lock
        self.fan_out = fan_out or (lambda send, writes: map(send, writes))
        self.parallel = max(1, parallel)
        self.done: list[KongWrite] = []  # written and answered, oldest first

    def carry_out(self, plan: ChangePlan, before: Mapping[str, int]) -> dict[str, Target | None]:
        """The whole plan: the upstream's tags first when they carry a lease (traffic may
        leave stable), else after the target writes (a lease ends once traffic is back).
        When the target writes fail and Kong is verifiably back where it was, a lease just
        written is taken away again; a half-applied canary keeps it, so the sweeper will
        return it to stable."""
        if plan.lease_first:
            self._tag_upstream(plan.tags_after)
        try:
            written = self.apply(plan.writes, before) if plan.writes else {}
        except ApiError as exc:
            if plan.lease_first and (exc.details or {}).get("consistent"):
                with contextlib.suppress(KongError):
                    self.writer.update_upstream(self.upstream, tags=list(plan.tags_before))
            raise
        if plan.tags_change and not plan.lease_first:
            self._tag_upstream(plan.tags_after)
        return written

    def _tag_upstream(self, tags: Sequence[str]) -> None:
        try:
            self.writer.update_upstream(self.upstream, tags=list(tags))
        except KongError as exc:
            raise from_kong_error(exc, upstream=self.upstream) from exc

    def apply(
        self, writes: Sequence[KongWrite], before: Mapping[str, int]
    ) -> dict[str, Target | None]:
        """Send the writes batch by batch; a batch goes out in parallel (``parallel`` at a
        time). On the first failure everything already written is undone and the
        ``half_applied`` error raised. Returns what Kong answered per target (None:
        deleted), so the caller needs no second read. ``before``: the weights Kong had."""
        written: dict[str, Target | None] = {}
        for batch in write_batches(writes):
            for start in range(0, len(batch), self.parallel):
                chunk = batch[start : start + self.parallel]
                try:
                    self.keep_lock()
                except ApiError:
                    self.undo(self.done)
                    raise
                if len(chunk) == 1:
                    outcomes = [self._try_send(chunk[0])]
                else:
                    outcomes = list(self.fan_out(self._try_send, chunk))
                failed = []
                for write, (entity, error) in zip(chunk, outcomes, strict=True):
                    if error is None:
                        self.done.append(write)
                        written[write.target] = entity
                    else:
                        failed.append((write, error))
                if failed:
                    write, exc = failed[0]
                    maybe_applied = [w for w, e in failed if ambiguous(e)]
                    undo_failed = self.undo(self.done + maybe_applied)
                    raise self.half_applied(
                        write, exc, undo_failed, len(maybe_applied), before
                    ) from exc
        return written

    def _try_send(self, write: KongWrite) -> Outcome:
        try:
            return self._send(write), None
        except KongError as exc:
            return None, exc

    def _send(self, write: KongWrite) -> Target | None:
        if write.action == "create":
            return self.writer.create_target(
                self.upstream, write.target, write.weight_after or 0, write.tags_after or ()
            )
        if write.action == "update":
            tags = write.tags_after if write.tags_after != write.tags_before else None
            return self.writer.update_target(
                self.upstream, write.target, weight=write.weight_after, tags=tags
            )
        with contextlib.suppress(KongNotFound):  # already gone: the outcome asked for
            self.writer.delete_target(self.upstream, write.target)
        return None

    def undo(self, done: Sequence[KongWrite]) -> list[str]:
        """Reverse ``done``, newest first; the failures, in words (the rest is undone)."""
        failures = []
        for write in reversed(done):
            try:
                if write.action == "create":
                    with contextlib.suppress(KongNotFound):  # the create never happened
                        self.writer.delete_target(self.upstream, write.target)
                elif write.action == "update":
                    tags = write.tags_before if write.tags_after != write.tags_before else None
                    self.writer.update_target(
                        self.upstream, write.target, weight=write.weight_before, tags=tags
                    )
                else:
                    with contextlib.suppress(KongConflict):  # the delete never happened
                        self.writer.create_target(
                            self.upstream,
                            write.target,
                            write.weight_before or 0,
                            write.tags_before or (),
                        )
            except KongError as exc:
                failures.append(f"undo of {write.action} {write.target} failed: {exc}")
        return failures

    def half_applied(
        self,
        failed: KongWrite,
        exc: KongError,
        undo_failed: list[str],
        maybe_applied: int,
        before: Mapping[str, int],
    ) -> ApiError:
        """Say what happened and what Kong shows now, judged by reading it back: a write
        whose answer was lost may or may not have landed, so only a read can tell."""
        api = from_kong_error(exc)
        status = api.status if api.status >= 500 else 502
        done = self.done
        what = f"Kong write {len(done) + 1} ({failed.action} {failed.target}) failed: {exc}"
        try:
            weights, now = self.look()
            consistent = dict(weights) == dict(before) and not undo_failed
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
