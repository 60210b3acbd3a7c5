"""One change at a time per upstream, across threads, gunicorn workers and replicas.

Two layers:

- ``LocalLocks``: a ``threading.Lock`` per upstream name, so the threads of one process queue
  up without asking Kong. An entry lives only while someone holds or waits for it, so names of
  unknown or refused upstreams do not pile up in memory.
- ``KongLocks``: the lock that reaches other processes, kept in Kong itself (the decisions and
  the Kong rules they rest on are in ``sidecar.core.upstream_lock``). Acquire = ``POST
  /upstreams`` of the lock entity; 409 means someone holds it; release = ``DELETE`` by id.

Where Kong cannot hold it: DB-less nodes and data planes refuse every write (405; the client
refuses first), so there is nothing to lock and the change itself is refused the same way.
Hybrid: the lock lives on the control plane (its database), like the weights; it is pushed to
data planes like any entity (an upstream with no targets: no traffic, no balancer work).
Konnect: the control-plane API keeps Kong's schema, ``name`` unique per control plane, and
answers 409 problem+json (``sidecar.kong.wire`` maps both to KongConflict).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sidecar.core.upstream_lock import (
    Claim,
    Verdict,
    backoff,
    decide,
    lock_name,
    needs_renewal,
    read_claim,
    tag_safe,
)
from sidecar.errors import ApiError, from_kong_error
from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import KongConflict, KongError, KongNotFound
from sidecar.kong.models import Upstream

log = logging.getLogger("kong_canary.locks")
# A lock found gone (released, or expired and deleted by us) is created again at once, a few
# times in a row; then the waiting (backoff, bounded by ``wait``) resumes.
IMMEDIATE_RETRIES = 3


class LocalLocks:
    """One lock per upstream in this process; entries are dropped when nobody uses them."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, upstream: str, timeout: float | None = None) -> Iterator[None]:
        """``timeout``: seconds to wait for the threads ahead (None: as long as it takes),
        then 503 ``upstream_busy``; a queue of slow changes must not hold a request for
        longer than its caller waits for the answer."""
        with self._guard:
            lock, users = self._locks.get(upstream, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[upstream] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
                raise busy(upstream, None)
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                _, users = self._locks[upstream]
                if users == 1:
                    del self._locks[upstream]
                else:
                    self._locks[upstream] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


@dataclass
class KongLock:
    """A lock we hold: the entity's id (release and renew address exactly this one)."""

    upstream: str
    id: str
    holder: str
    until: float


class KongLocks:
    """Acquire, renew and release upstream locks kept in Kong.

    ``ttl``: how long a lock is good for unless renewed (a killed holder frees the upstream
    after ``ttl`` + ``skew``). ``wait``: how long to wait for another holder before answering
    503 ``upstream_busy`` (Orca retries 503). ``skew``: the clock difference between replicas
    tolerated. Clocks are injected: ``clock`` is the wall clock written into the lock (other
    replicas read it), ``monotonic`` bounds our own waiting."""

    def __init__(
        self,
        kong: KongAdmin,
        *,
        ttl: float = 30.0,
        wait: float = 10.0,
        skew: float = 5.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.kong = kong
        self.ttl = ttl
        self.wait = wait
        self.skew = skew
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.jitter = jitter or random.Random().random
        self._process = tag_safe(f"{socket.gethostname()}:{os.getpid()}")

    @contextmanager
    def held(self, upstream: str, wait: float | None = None) -> Iterator[KongLock]:
        lock = self.acquire(upstream, wait)
        try:
            yield lock
        finally:
            self.release(lock)

    def acquire(self, upstream: str, wait: float | None = None) -> KongLock:
        """``wait``: seconds to wait for another holder (default ``self.wait``)."""
        name = lock_name(upstream)
        holder = f"{self._process}:{uuid.uuid4().hex[:12]}"  # one per acquisition
        give_up = self.monotonic() + (self.wait if wait is None else wait)
        attempt = 0
        retries_now = 0  # creates retried without waiting (released, or taken over)
        last: Claim | None = None
        while True:
            until = self.clock() + self.ttl
            claim = Claim(upstream, holder, until)
            try:
                entity = self.kong.create_upstream(name, claim.tags())
                return KongLock(upstream, entity.id, holder, until)
            except KongConflict:
                pass
            except KongError as exc:
                # The create's answer may be lost after it landed: a lock in our name would
                # then block everyone until it expires, so remove it if it is ours.
                self._discard_if_ours(name, holder)
                raise from_kong_error(exc) from exc
            found: Upstream | None
            try:
                found = self.kong.upstream(name)
            except KongNotFound:
                found = None  # released between our create and this read
            except KongError as exc:
                raise from_kong_error(exc) from exc
            if found is not None:
                last = read_claim(found.tags)
                verdict = decide(last, holder, self.clock(), self.skew)
                if verdict is Verdict.OURS:  # an earlier create of ours landed unanswered
                    return KongLock(upstream, found.id, holder, last.until or until)
                if verdict is Verdict.TAKE_OVER:
                    log.warning(
                        "taking over the expired lock of upstream %s (holder %s, until %s)",
                        upstream,
                        last.holder,
                        last.until,
                    )
                    self._delete(found.id)
                    found = None
            if found is None and retries_now < IMMEDIATE_RETRIES:
                retries_now += 1
                continue  # the name is free now: create again at once
            retries_now = 0
            remaining = give_up - self.monotonic()
            if remaining <= 0:
                raise busy(upstream, last)
            self.sleep(min(remaining, backoff(attempt, self.jitter())))
            attempt += 1

    def renew(self, lock: KongLock) -> None:
        """Extend the lock when half of it is gone; 503 ``lock_lost`` when it was taken over
        (it expired under us), so the caller stops before writing more."""
        now = self.clock()
        if not needs_renewal(lock.until, now, self.ttl):
            return
        until = now + self.ttl
        try:
            self.kong.update_upstream(
                lock.id, tags=list(Claim(lock.upstream, lock.holder, until).tags())
            )
        except KongNotFound:
            raise ApiError(
                503,
                "lock_lost",
                f"the lock on upstream {lock.upstream!r} expired and was taken over during "
                "this change; read the split and retry",
            ) from None
        except KongError as exc:
            raise from_kong_error(exc) from exc
        lock.until = until

    def release(self, lock: KongLock) -> None:
        """Never raises: a lock that cannot be deleted now expires by itself."""
        self._delete(lock.id)

    def _delete(self, ident: str) -> None:
        try:
            self.kong.delete_upstream_by_id(ident)
        except KongNotFound:
            pass
        except KongError as exc:
            log.warning("could not delete upstream lock %s (it expires by itself): %s", ident, exc)

    def _discard_if_ours(self, name: str, holder: str) -> None:
        with contextlib.suppress(KongError):
            found = self.kong.upstream(name)
            if read_claim(found.tags).holder == holder:
                self._delete(found.id)


def busy(upstream: str, claim: Claim | None) -> ApiError:
    details = {"holder": claim.holder, "until": claim.until} if claim else None
    return ApiError(
        503,
        "upstream_busy",
        f"another change on upstream {upstream!r} is in progress (on this or another replica); "
        "retry",
        details=details,
        headers={"Retry-After": "1"},
    )
