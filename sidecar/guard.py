"""The guard's shell: ingest batches in, one look per window, rollback and alert on a trip.

The decision is :mod:`sidecar.core.guard` (pure); this module only sums the ingest's
tallies per window, asks it, and acts. Everything with a side effect is injected – the
clock, the rollback (``TrafficService.rollback`` in the app, the same path as
``POST .../rollback``), the alert sender – so tests drive it without sleeping.

On a trip, in this order: the rollback (first: traffic back to stable is what protects
users), one audit line (``guard_trip``, naming the replica that tripped),
``kong_canary_guard_trips_total{upstream,metric}``, then the alert, posted off the
caller's thread with bounded retries (:class:`AlertSender`) so it never delays the rollback
or the ingest answer. A rollback that fails is logged and retried at the next look: the
guard stays tripped, and a rollback is idempotent (stable at 100 % stays so), so any
replica tripping – or several at once – is safe.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import Counter

from sidecar.core.guard import GuardState, Look, VariantLook, Verdict
from sidecar.core.guard_config import GuardConfig, redacted
from sidecar.core.split import VARIANTS
from sidecar.gateway.entries import Tally

log = logging.getLogger("kong_canary.guard")
audit = logging.getLogger("kong_canary.audit")

GUARD_TRIPS = Counter(
    "kong_canary_guard_trips_total",
    "Canaries the guard rolled back, by upstream and the metric that tripped it",
    ["upstream", "metric"],
)


@dataclass
class _Window:
    """What each variant got since the last look (summed ingest series)."""

    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latency: dict[str, list[int]] = field(default_factory=dict)

    def add(self, variant: str, codes: Mapping[str, int], buckets: Sequence[int]) -> None:
        self.requests[variant] = self.requests.get(variant, 0) + sum(codes.values())
        self.errors[variant] = self.errors.get(variant, 0) + codes.get("5xx", 0)
        current = self.latency.get(variant)
        self.latency[variant] = (
            [a + b for a, b in zip(current, buckets, strict=True)] if current else list(buckets)
        )

    def look(self, at: float, canary_expected: bool) -> Look:
        variants = {
            v: VariantLook(self.requests.get(v, 0), self.errors.get(v, 0), self.latency.get(v, ()))
            for v in VARIANTS
        }
        return Look(at, variants, canary_expected)


@dataclass
class _Armed:
    state: GuardState
    canary_expected: bool
    window: _Window = field(default_factory=_Window)
    next_look: float = 0.0
    rolled_back: bool = False
    rolling_back: bool = False  # a rollback is under way (off the lock): no second one
    ramp: str | None = None  # the ramp that armed it, whose status the trip decides


class AlertSender:
    """POSTs ``{"text": ...}`` (Slack incoming-webhook compatible) on a daemon thread.

    At most ``attempts`` tries, ``backoff`` seconds apart doubling, each bounded by
    ``timeout``: an alert endpoint that is down costs a thread for a bounded time, never
    the rollback. ``send`` returns the thread so tests can join it.
    """

    def __init__(
        self,
        url: str,
        *,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.transport = transport
        self.sleep = sleep

    def send(self, document: Mapping[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=self._deliver, args=(dict(document),), daemon=True)
        thread.start()
        return thread

    def _deliver(self, document: dict[str, Any]) -> bool:
        delay = self.backoff
        with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
            for attempt in range(1, self.attempts + 1):
                try:
                    response = client.post(self.url, json=document)
                    if response.status_code < 300:
                        return True
                    reason = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    reason = str(exc) or type(exc).__name__
                log.warning("guard alert attempt %d/%d failed: %s", attempt, self.attempts, reason)
                if attempt < self.attempts:
                    self.sleep(delay)
                    delay *= 2
        return False


class Guardian:
    """Per-process guards of the upstreams that have one armed."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rollback: Callable[[str, str], object],
        bounds: Sequence[float],
        replica: str,
        alert: AlertSender | None = None,
        alert_sender: Callable[[str], AlertSender] = AlertSender,
    ) -> None:
        self.clock = clock
        self.rollback = rollback
        self.bounds = tuple(bounds)
        self.replica = replica
        self.alert = alert  # one sender for every upstream (tests); else per alert_url
        self.alert_sender = alert_sender
        self._armed: dict[str, _Armed] = {}
        self._lock = threading.Lock()

    def start(self, interval: float = 1.0) -> Guardian:
        """Look on a timer too, so a canary that gets no batches at all is still judged
        (no traffic) and windows close on time; a daemon thread, ``stop`` ends it."""
        self._stopping = threading.Event()

        def loop() -> None:
            while not self._stopping.wait(interval):
                try:
                    self.evaluate()
                except Exception:  # a bad look must not end the timer
                    log.exception("guard evaluation failed")

        self._timer = threading.Thread(target=loop, name="kong-canary-guard", daemon=True)
        self._timer.start()
        return self

    def stop(self) -> None:
        stopping = getattr(self, "_stopping", None)
        if stopping is not None:
            stopping.set()
            self._timer.join(5)

    def arm(
        self,
        upstream: str,
        config: GuardConfig,
        *,
        canary_expected: bool = True,
        ramp: str | None = None,
    ) -> None:
        """Start (or restart, with fresh evidence) the guard of an upstream's canary."""
        now = self.clock()
        with self._lock:
            self._armed[upstream] = _Armed(
                GuardState(config, self.bounds, now),
                canary_expected,
                next_look=now + config.window_seconds,
                ramp=ramp,
            )

    def trip_of_ramp(self, upstream: str, ramp: str) -> str | None:
        """The trip message when this guard, armed by ``ramp``, rolled the canary back."""
        with self._lock:
            armed = self._armed.get(upstream)
            if armed is None or armed.ramp != ramp or not armed.rolled_back:
                return None
            verdict = armed.state.verdict
            return f"guard tripped on {verdict.metric}: {verdict.message}"

    def disarm(self, upstream: str) -> None:
        with self._lock:
            self._armed.pop(upstream, None)

    def view(self, upstream: str) -> dict[str, Any] | None:
        with self._lock:
            armed = self._armed.get(upstream)
            if armed is None:
                return None
            config = armed.state.config
            return {
                "config": {**config.as_json(), "alert_url": redacted(config.alert_url)},
                **armed.state.view(),
                "rolled_back": armed.rolled_back,
                "replica": self.replica,
            }

    def record(self, tally: Tally) -> list[str]:
        """One call per ingested batch; the upstreams this batch made trip."""
        with self._lock:
            for (upstream, variant, *_), series in tally.series.items():  # any route
                armed = self._armed.get(upstream)
                if armed is not None:
                    armed.window.add(variant, series.codes, series.request)
        return self.evaluate()

    def evaluate(self) -> list[str]:
        """Look at every upstream whose window has ended (the ingest and a timer call this)."""
        now = self.clock()
        actions: list[tuple[str, _Armed, Verdict]] = []
        with self._lock:
            for upstream, armed in self._armed.items():
                if now < armed.next_look:
                    continue
                window, armed.window = armed.window, _Window()
                step = armed.state.config.window_seconds
                armed.next_look = now + step
                verdict = armed.state.observe(window.look(now, armed.canary_expected))
                if verdict.tripped and not (armed.rolled_back or armed.rolling_back):
                    armed.rolling_back = True
                    actions.append((upstream, armed, verdict))
        return [
            upstream for upstream, armed, verdict in actions if self._trip(upstream, armed, verdict)
        ]

    def _trip(self, upstream: str, armed: _Armed, verdict: Verdict) -> bool:
        message = f"guard tripped on {verdict.metric}: {verdict.message}"
        try:
            self.rollback(upstream, message)
        except Exception:  # the next look retries; the guard stays tripped
            log.exception("guard rollback of %s failed; retrying at the next look", upstream)
            with self._lock:
                armed.rolling_back = False
            return False
        with self._lock:
            armed.rolled_back, armed.rolling_back = True, False
        GUARD_TRIPS.labels(upstream, verdict.metric or "unknown").inc()
        audit.info(
            json.dumps(
                {
                    "event": "guard_trip",
                    "upstream": upstream,
                    "metric": verdict.metric,
                    "message": verdict.message,
                    "replica": self.replica,
                },
                sort_keys=True,
            )
        )
        url = armed.state.config.alert_url
        sender = self.alert or (self.alert_sender(url) if url else None)
        if sender is not None:
            sender.send(
                {
                    "text": f"kong-canary: canary of {upstream} rolled back – {message}",
                    "upstream": upstream,
                    "metric": verdict.metric,
                    "replica": self.replica,
                }
            )
        return True
