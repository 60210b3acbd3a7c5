"""What the sidecar remembers about an upstream, kept in Kong as tags on the upstream.

Keeping it in Kong means any replica sees and enforces it after the one that wrote it
is gone, with no store of our own to run. Tags (printable ASCII, no ``,`` or ``/``):

- ``managed-by=kong-canary``: the sidecar has changed this upstream (the reaper's index)
- ``kong-canary-lease=<epoch>``: the non-stable split expires then (dead man's switch)
- ``kong-canary-ramp=<fingerprint>``: the ramp that drives the upstream now
- ``kong-canary-ramp-canceled=<fingerprint>``: that ramp was cancelled (and rolled back)
- ``kong-canary-ramp-exec=<hash>``: the Spinnaker execution that started the ramp, so
  Orca's cancel hook (which cannot know the ramp id) can find it

Pure functions.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.core.split import SplitError
from sidecar.core.tags import (
    LEASE_TAG,
    MANAGED_TAG,
    RAMP_CANCELED_TAG,
    RAMP_EXECUTION_TAG,
    RAMP_TAG,
)

_OURS = (LEASE_TAG, RAMP_TAG, RAMP_CANCELED_TAG, RAMP_EXECUTION_TAG)


@dataclass(frozen=True)
class Marks:
    managed: bool = False
    lease_until: float | None = None
    ramp: str | None = None
    ramp_canceled: str | None = None
    ramp_execution: str | None = None

    def but(self, **changes: object) -> Marks:
        """These marks with ``changes``; an unknown name is a TypeError, as with
        ``dataclasses.replace``, which costs four times this (four calls per ramp step)."""
        return Marks(**{**self.__dict__, **changes})  # type: ignore[arg-type]


def read_marks(tags: Sequence[str]) -> Marks:
    """Our marks among the upstream's tags. A ramp step reads the same tags four times (its
    probe, under the lock, the plan's tags after, the read-back) and Marks are immutable:
    a tuple of tags is answered from a cache."""
    if type(tags) is tuple:
        return _cached_marks(tags)
    return _marks(tags)


@functools.lru_cache(maxsize=4096)
def _cached_marks(tags: tuple[str, ...]) -> Marks:
    return _marks(tags)


def _marks(tags: Sequence[str]) -> Marks:
    lease = ramp = canceled = execution = None
    for tag in tags:
        if tag.startswith(LEASE_TAG):
            try:
                lease = float(tag[len(LEASE_TAG) :])
            except ValueError:
                lease = None
        elif tag.startswith(RAMP_TAG):
            ramp = tag[len(RAMP_TAG) :]
        elif tag.startswith(RAMP_CANCELED_TAG):
            canceled = tag[len(RAMP_CANCELED_TAG) :]
        elif tag.startswith(RAMP_EXECUTION_TAG):
            execution = tag[len(RAMP_EXECUTION_TAG) :]
    return Marks(MANAGED_TAG in tags, lease, ramp, canceled, execution)


def write_marks(tags: Sequence[str], marks: Marks) -> tuple[str, ...]:
    """The upstream's tags with ours replaced by ``marks``; everyone else's are kept."""
    kept = [t for t in tags if t != MANAGED_TAG and not t.startswith(_OURS)]
    if marks.managed:
        kept.append(MANAGED_TAG)
    if marks.lease_until is not None:
        kept.append(f"{LEASE_TAG}{int(marks.lease_until)}")
    if marks.ramp is not None:
        kept.append(f"{RAMP_TAG}{marks.ramp}")
    if marks.ramp_canceled is not None:
        kept.append(f"{RAMP_CANCELED_TAG}{marks.ramp_canceled}")
    if marks.ramp_execution is not None:
        kept.append(f"{RAMP_EXECUTION_TAG}{marks.ramp_execution}")
    return tuple(kept)


def execution_hash(execution_id: str) -> str:
    """Execution ids are opaque strings; a hash keeps the tag short and tag-safe."""
    return hashlib.sha256(execution_id.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LeasePolicy:
    default: float = 3600.0  # seconds
    maximum: float = 86400.0

    def seconds(self, requested: float | None, *, field: str = "lease") -> float:
        """The lease a request asks for: the default when absent, else more than 0 and at
        most the maximum. The one rule for splits and ramps (issue 13 item 11: a ramp's
        ``lease: 0`` meant the default while a split refused it)."""
        seconds = self.default if requested is None else requested
        if seconds <= 0:
            raise SplitError(field, "must be a positive number of seconds")
        if seconds > self.maximum:
            raise SplitError(field, f"must be at most {int(self.maximum)} seconds (lease maximum)")
        return seconds

    def deadline(self, now: float, requested: float | None, *, field: str = "lease") -> float:
        """The expiry of a split set at ``now`` (see :meth:`seconds` for the rule)."""
        return now + self.seconds(requested, field=field)


def renewed(
    current: float | None, proposed: float | None, now: float, *, slack: float = 60.0
) -> float | None:
    """Keep the current deadline when the new one is barely later, so repeating a request
    (Orca retries, idempotent pipelines) makes no Kong write; a real renewal moves it.
    "Barely" is at most ``slack`` and a tenth of the lease, so short leases still renew,
    and a deadline that has already passed is always replaced."""
    if current is None or proposed is None or current <= now:
        return proposed
    window = min(slack, (proposed - now) / 10)
    return current if 0 <= proposed - current < window else proposed


def expired(marks: Marks, now: float) -> bool:
    return marks.lease_until is not None and now >= marks.lease_until
