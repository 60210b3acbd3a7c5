"""The dead man's switch: upstreams whose lease ran out go back to stable.

Every worker of every replica runs a sweeper thread. Sweeps are idempotent (a rollback of
an upstream already at stable writes nothing), so several sweepers only cost reads; the
lease itself lives in Kong, so it is enforced whichever replica survives.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable

from sidecar.core.lease import expired, read_marks
from sidecar.core.refusals import Refusal
from sidecar.errors import ApiError, answer
from sidecar.traffic import TrafficService

log = logging.getLogger("kong_canary.leases")
audit = logging.getLogger("kong_canary.audit")


def sweep(traffic: TrafficService, now: float) -> list[str]:
    """Roll back every managed upstream whose lease expired; returns their names."""
    rolled_back = []
    for upstream in traffic.managed_upstreams():
        marks = read_marks(upstream.tags)
        if not expired(marks, now):
            continue
        try:
            # Re-checked under the upstream's lock: a renewal since the listing wins.
            result = traffic.rollback(upstream.name, only_if_expired_at=now)
        except (ApiError, Refusal) as exc:
            log.warning("lease expired on %s but rollback failed: %s", upstream.name, exc.message)
            continue
        if result is None:
            continue
        audit.info(
            json.dumps(
                {
                    "event": "lease_expired",
                    "token": None,
                    "upstream": upstream.name,
                    "lease_until": marks.lease_until,
                    "before": result.previous.as_percentages() if result.previous else None,
                    "after": result.split.as_percentages() if result.split else None,
                    "writes": [w.as_json() for w in result.writes],
                },
                sort_keys=True,
            )
        )
        rolled_back.append(upstream.name)
    return rolled_back


def rollback_all(traffic: TrafficService) -> list[dict[str, object]]:
    """Incident button: every managed upstream back to stable, whatever its lease says."""
    results: list[dict[str, object]] = []
    for upstream in traffic.managed_upstreams():
        try:
            change = traffic.rollback(upstream.name)
            assert change is not None  # unconditional
            results.append(
                {"upstream": upstream.name, "result": "ok", "writes": len(change.writes)}
            )
        except (ApiError, Refusal) as exc:
            results.append(
                {
                    "upstream": upstream.name,
                    "result": "failed",
                    "error": answer(exc).body()["error"],
                }
            )
    return results


def sweep_delay(interval: float, jitter: float, draw: float) -> float:
    """The wait before the next sweep: ``interval`` shortened by up to ``jitter`` of itself.

    ``draw`` is uniform in [0, 1), drawn afresh for each sweep from the process's own random
    source, so replicas × workers started together drift apart instead of listing Kong in
    step; never longer than ``interval``, so a lease is never enforced later than promised."""
    return interval * (1.0 - jitter * draw)


class LeaseSweeper:
    """A daemon thread calling ``sweep`` every ``interval`` seconds, less a random fraction
    (``jitter``, see ``sweep_delay``) drawn from ``rng`` (its own per process unless given)."""

    def __init__(
        self,
        traffic: TrafficService,
        interval: float,
        clock: Callable[[], float] = time.time,
        *,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        self.traffic = traffic
        self.interval = interval
        self.clock = clock
        self.jitter = jitter
        # its own by default: the global one belongs to the app's users
        self._rng = rng if rng is not None else random.Random()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-sweeper", daemon=True)
        # More sweeps on the same schedule (the gateway window check): each its own try.
        self.also: list[Callable[[], object]] = []

    def start(self) -> LeaseSweeper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop, and wait for a sweep in progress: closing the Kong client under a rollback
        would leave it half-applied."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def next_delay(self) -> float:
        return sweep_delay(self.interval, self.jitter, self._rng.random())

    def _run(self) -> None:
        while not self._stop.wait(self.next_delay()):
            try:
                sweep(self.traffic, self.clock())
            except (ApiError, Refusal) as exc:
                log.warning("lease sweep failed: %s", exc.message)
            except Exception:  # the sweeper must outlive any surprise
                log.exception("lease sweep crashed")
            for extra in list(self.also):
                try:
                    extra()
                except Exception:
                    log.exception("sweep %s crashed", getattr(extra, "__qualname__", extra))
