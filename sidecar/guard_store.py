"""The guard's state in Kong: the armed config and the last trip, as upstream tags.

Every write reads the upstream's tags and writes them back under both of the upstream's
locks (``TrafficService.exclusive``: the in-process one and the lock entity in Kong), like
the lease and ramp marks a change writes, so no change of another worker or replica is
lost between the read and the write. The tag formats and the claim rule are pure
(:mod:`sidecar.core.guard_tags`); this module only reads and writes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Protocol

from sidecar.core.guard_config import GuardConfig
from sidecar.core.guard_tags import (
    GuardTrip,
    claim_trip,
    guard_tag,
    read_guard,
    trip_tag,
    with_guard,
    with_trip,
)
from sidecar.traffic import TrafficService


class GuardStore(Protocol):
    """What the guardian needs from wherever the shared guard lives."""

    def load(self, upstream: str) -> Sequence[str]: ...

    def arm(self, upstream: str, config: GuardConfig, ramp: str | None) -> str: ...

    def disarm(self, upstream: str, *, ramp: str | None = None, held: bool = False) -> None: ...

    def claim(self, upstream: str, guard_id: str | None, trip: GuardTrip) -> str: ...


class KongGuardStore:
    """The guard kept as tags on the Kong upstream it guards."""

    def __init__(self, service: TrafficService) -> None:
        self.service = service

    def load(self, upstream: str) -> Sequence[str]:
        return self.service.kong.upstream(upstream).tags

    def arm(self, upstream: str, config: GuardConfig, ramp: str | None) -> str:
        """Write a fresh arming (and forget the last trip); its id."""
        guard_id = secrets.token_hex(6)
        tag = guard_tag(config, ramp, guard_id)
        self._rewrite(upstream, lambda tags: with_trip(with_guard(tags, tag), None))
        return guard_id

    def disarm(self, upstream: str, *, ramp: str | None = None, held: bool = False) -> None:
        """No canary left to guard; the last trip stays readable (``GET …/guard``). With
        ``ramp`` (a short id): only the guard that ramp armed. ``held``: the caller already
        holds the upstream's locks (a ``TrafficService`` observer, inside the change)."""

        def remove(tags: Sequence[str]) -> Sequence[str]:
            armed = read_guard(tags)
            if ramp is not None and (armed is None or armed.ramp != ramp):
                return tags
            return with_guard(tags, None)

        self._rewrite(upstream, remove, held=held)

    def claim(self, upstream: str, guard_id: str | None, trip: GuardTrip) -> str:
        """``claimed``, ``tripped`` or ``gone`` (:func:`~sidecar.core.guard_tags.claim_trip`);
        the trip is written when claimed."""
        outcome: list[str] = []

        def decide(tags: Sequence[str]) -> Sequence[str]:
            outcome.append(claim_trip(tags, guard_id, trip))
            return with_trip(tags, trip_tag(trip)) if outcome[-1] == "claimed" else tags

        self._rewrite(upstream, decide)
        return outcome[-1]

    def _rewrite(
        self,
        upstream: str,
        change: Callable[[Sequence[str]], Sequence[str]],
        *,
        held: bool = False,
    ) -> None:
        """``change`` applied to the upstream's tags under its locks. A first read without the
        locks skips them when nothing would change (a rollback of an unguarded upstream, a
        trip already recorded): those answers cannot be undone by a concurrent writer (an
        arming id is never reused), so only a write needs the Kong lock. ``held``: this
        thread holds them already (they are not reentrant), the one read is under them."""
        current = self.service.kong.upstream(upstream)
        if set(change(current.tags)) == set(current.tags):
            return
        if held:
            self.service.kong.update_upstream(current.name, tags=list(change(current.tags)))
            return
        with self.service.exclusive(upstream):
            current = self.service.kong.upstream(upstream)
            tags = tuple(change(current.tags))
            if set(tags) != set(current.tags):
                self.service.kong.update_upstream(current.name, tags=list(tags))
