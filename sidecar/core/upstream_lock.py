"""Mutual exclusion per upstream across workers and replicas: the pure decisions.

The lock is an entity in Kong whose *creation* is the acquire: an upstream named
``lock_name(upstream)``. Kong's ``upstreams.name`` is unique (schema ``unique = true``,
``kong/db/schema/entities/upstreams.lua`` in 2.8.5, 3.4.2 and 3.9.3; in Postgres the constraint
``upstreams_ws_id_name_unique``, ``kong/db/migrations/core/009_200_to_210.lua`` with
``operations/200_to_210.lua`` ``ws_unique_field``), so of two concurrent creates exactly one
succeeds and the other gets 409 ``unique constraint violation`` (code 5,
``kong/db/strategies/postgres/init.lua`` ``toerror``; recorded on 2.8.5/3.4.2/3.9.3 as
"create same upstream again"). The holder and the expiry travel in the entity's tags, written
by that same create, so a holder that was killed cannot wedge the upstream: once the expiry
(plus an allowance for clock skew between replicas) has passed, anyone may delete that entity
*by its id* and create it again. Deleting by id is what makes a takeover safe: of two takers,
the second one's delete finds nothing (the id is gone), and its create then meets the first
one's new lock.

Pure functions: the shell (``sidecar.upstream_locks``) does the I/O.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.core.tags import (
    LOCK_HOLDER_TAG,
    LOCK_NAME_PREFIX,
    LOCK_OF_TAG,
    LOCK_TAG,
    LOCK_UNTIL_TAG,
)

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


@functools.lru_cache(maxsize=4096)
def lock_name(upstream: str) -> str:
    """The lock entity's name: one DNS label (Kong's upstream names must be hostnames,
    ``validate_name``), whatever the upstream's name length; a hash keeps it unique per name.
    Cached: every writing change of an upstream hashes the same name again."""
    digest = hashlib.sha256(upstream.encode()).hexdigest()[:32]
    return f"{LOCK_NAME_PREFIX}{digest}"


def tag_safe(text: str) -> str:
    """Kong tags are printable ASCII without ``,`` and ``/``; keep a holder id well inside."""
    return _TAG_UNSAFE.sub("_", text)[:120]


@dataclass(frozen=True)
class Claim:
    """Who holds an upstream's lock, and until when (epoch seconds)."""

    upstream: str
    holder: str
    until: float | None

    def tags(self) -> tuple[str, ...]:
        out = [LOCK_TAG, f"{LOCK_OF_TAG}{self.upstream}", f"{LOCK_HOLDER_TAG}{self.holder}"]
        if self.until is not None:
            out.append(f"{LOCK_UNTIL_TAG}{self.until:.3f}")
        return tuple(out)


def read_claim(tags: Sequence[str]) -> Claim:
    """The claim a lock entity carries; an unreadable expiry is ``None`` (see ``decide``)."""
    upstream = holder = ""
    until: float | None = None
    for tag in tags:
        if tag.startswith(LOCK_OF_TAG):
            upstream = tag[len(LOCK_OF_TAG) :]
        elif tag.startswith(LOCK_HOLDER_TAG):
            holder = tag[len(LOCK_HOLDER_TAG) :]
        elif tag.startswith(LOCK_UNTIL_TAG):
            try:
                until = float(tag[len(LOCK_UNTIL_TAG) :])
            except ValueError:
                until = None
    return Claim(upstream, holder, until)


class Verdict(enum.Enum):
    OURS = "ours"  # our own create landed although its answer was lost
    WAIT = "wait"  # someone else holds it and it has not expired
    TAKE_OVER = "take_over"  # expired (or unreadable): delete it by id and create again


def decide(claim: Claim, me: str, now: float, skew: float) -> Verdict:
    """What to do about a lock found in place when our create got 409.

    The expiry was set on another replica's clock; it counts as passed only ``skew`` seconds
    after it, so clocks that disagree by less than that never let two holders overlap. A lock
    without a readable expiry was not written by a holder (they always write one): it would
    never expire, so it is taken over rather than let it wedge the upstream."""
    if claim.holder == me:
        return Verdict.OURS
    if claim.until is None or now >= claim.until + skew:
        return Verdict.TAKE_OVER
    return Verdict.WAIT


def expired(claim: Claim, now: float, skew: float) -> bool:
    return claim.until is None or now >= claim.until + skew


def needs_renewal(until: float, now: float, ttl: float) -> bool:
    """A holder extends its lock once half of it is gone, so a long change (many writes,
    slow Kong) keeps it while a dead holder's lock still runs out within ``ttl``."""
    return until - now < ttl / 2


def backoff(attempt: int, fraction: float, *, base: float = 0.01, cap: float = 0.25) -> float:
    """Seconds to wait before try ``attempt + 1`` while someone else holds the lock: "full
    jitter" (a ``fraction`` in [0, 1) of an exponentially growing ceiling, capped), so many
    waiters spread out instead of hitting Kong in step."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return max(0.0, min(1.0, fraction)) * ceiling
