"""The armed guard and its trip kept in Kong, as upstream tags, so every worker and replica
guards the canary and every one of them can tell a ramp's poll that the guard ended it.

- ``kong-canary-guard=<base64url(JSON)>``: the config as given, the short id of the ramp
  that armed it, and the arming's id (a fresh one per arming: a re-arm restarts every
  process's evidence, and a trip names the arming it ended).
- ``kong-canary-guard-trip=<base64url(JSON)>``: the last trip: the arming it ended, that
  arming's ramp, the metric, the message Orca shows, the replica that tripped and when.
  Written once per arming (the first process to trip claims it, under the upstream's
  lock), so the audit line, the metric and the alert happen once, not once per replica.

Kong tags allow printable ASCII except ``,`` and ``/`` (``validate_tag`` in
``kong/db/schema/typedefs.lua``) and set no length limit (``typedefs.tag`` is a string with
that validator only, ``typedefs.tags`` a set of them; the Postgres column is ``text[]``);
the base64url alphabet (``A-Z a-z 0-9 - _``) stays inside it. A guard tag is ~300
characters, plus the alert URL (at most 2,048) base64-encoded. Like the lease marks
(``sidecar.core.lease``), other tags are kept untouched, and ``write_marks`` keeps ours.
The ``alert_url`` travels too: whoever reads Kong's Admin API can see it (they can also
change every route, so it tells them nothing new). Pure.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sidecar.core.guard_config import GuardConfig
from sidecar.core.split import SplitError
from sidecar.core.tags import GUARD_TAG, TRIP_TAG


@dataclass(frozen=True)
class ArmedGuard:
    """What the guard tag says: the config, the arming ramp's short id, the arming's id."""

    config: GuardConfig
    ramp: str | None
    id: str | None = None


@dataclass(frozen=True)
class GuardTrip:
    """One arming's trip, as every process reads it back."""

    guard: str | None  # the arming's id
    ramp: str | None  # the short id of the ramp that arming guarded
    metric: str | None
    message: str
    replica: str
    at: float  # wall-clock seconds

    @property
    def text(self) -> str:
        """What a ramp's poll shows (Orca displays it)."""
        return f"guard tripped on {self.metric}: {self.message}"


def _encode(document: dict[str, Any]) -> str:
    raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(payload: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def guard_tag(config: GuardConfig, ramp: str | None, guard_id: str | None = None) -> str:
    document = {"guard": config.as_json(), "ramp": ramp}
    if guard_id is not None:
        document["id"] = guard_id
    return GUARD_TAG + _encode(document)


def read_guard(tags: Sequence[str]) -> ArmedGuard | None:
    """The guard an upstream's tags carry; None without one or with one we cannot read
    (a newer version's fields, a hand-edited tag): never guess a guard."""
    for tag in tags:
        if tag.startswith(GUARD_TAG):
            try:
                document = _decode(tag[len(GUARD_TAG) :])
                ramp, guard_id = document.get("ramp"), document.get("id")
                config = GuardConfig.from_json(document["guard"])
            except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, SplitError):
                return None
            return ArmedGuard(
                config,
                ramp if isinstance(ramp, str) else None,
                guard_id if isinstance(guard_id, str) else None,
            )
    return None


def with_guard(tags: Sequence[str], tag: str | None) -> tuple[str, ...]:
    """The tags with our guard tag replaced by ``tag`` (removed when None)."""
    kept = [t for t in tags if not t.startswith(GUARD_TAG)]
    return (*kept, tag) if tag is not None else tuple(kept)


def trip_tag(trip: GuardTrip) -> str:
    return TRIP_TAG + _encode(asdict(trip))


def read_trip(tags: Sequence[str]) -> GuardTrip | None:
    """The last trip the tags record; None without one or with one we cannot read."""
    for tag in tags:
        if tag.startswith(TRIP_TAG):
            try:
                document = _decode(tag[len(TRIP_TAG) :])
                trip = GuardTrip(**document)
                if not isinstance(trip.message, str) or not isinstance(trip.at, int | float):
                    return None
            except (binascii.Error, ValueError, TypeError, AttributeError):
                return None
            return trip
    return None


def with_trip(tags: Sequence[str], tag: str | None) -> tuple[str, ...]:
    """The tags with our trip tag replaced by ``tag`` (removed when None)."""
    kept = [t for t in tags if not t.startswith(TRIP_TAG)]
    return (*kept, tag) if tag is not None else tuple(kept)


def claim_trip(tags: Sequence[str], guard_id: str | None, trip: GuardTrip) -> str:
    """Who records the trip of arming ``guard_id``, decided on the tags read under the
    upstream's lock: ``claimed`` (this process; write ``trip_tag(trip)``), ``tripped``
    (another process already did: roll back, idempotent, but no second audit line) or
    ``gone`` (that arming was removed or replaced meanwhile: nothing to do)."""
    armed = read_guard(tags)
    if armed is None or armed.id != guard_id:
        return "gone"
    recorded = read_trip(tags)
    if recorded is not None and recorded.guard == guard_id:
        return "tripped"
    return "claimed"
