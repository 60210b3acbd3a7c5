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
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import Counter

from sidecar.core.guard import GuardState, Look, VariantLook, Verdict
from sidecar.core.guard_config import GuardConfig, redacted
from sidecar.core.guard_tags import GuardTrip, read_guard, read_trip
from sidecar.core.split import VARIANTS
from sidecar.gateway.entries import Tally

if TYPE_CHECKING:
    from sidecar.guard_store import GuardStore

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
class _Route:
    """One listed route's own guard: its canary against the same route of the reference."""

    state: GuardState
    window: _Window = field(default_factory=_Window)


@dataclass
class _Armed:
    state: GuardState
    canary_expected: bool
    window: _Window = field(default_factory=_Window)
    routes: dict[str, _Route] = field(default_factory=dict)
    next_look: float = 0.0
    rolled_back: bool = False
    rolling_back: bool = False  # a rollback is under way (off the lock): no second one
    ramp: str | None = None  # the short id of the ramp that armed it (its status: the trip's)
    guard_id: str | None = None  # the arming in Kong this guard follows (None: local only)
    claimed: bool = False  # this process recorded the trip: it audits, counts and alerts
    trip: GuardTrip | None = None  # the trip recorded in Kong for this arming


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
    """The guards of the upstreams that have one armed, in this process; with a ``store``
    (:class:`~sidecar.guard_store.KongGuardStore` in the app) shared with every other worker
    and replica through Kong's upstream tags.

    Sharing: an arming is written to Kong, and any process that ingests batches of an
    upstream (its window is open), or looks at an armed one on its timer, reads the upstream's
    guard at most once per ``sync_seconds`` (never once per batch) and follows it: a new
    arming restarts its evidence, a removed one ends its guard, a trip recorded by another
    process stops it. A process whose guard trips first claims the trip in Kong (under the
    upstream's lock): the claimer writes the audit line, counts the metric and sends the
    alert, every tripping process rolls back (idempotent), and any process answers a ramp's
    poll FAILED from the recorded trip.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rollback: Callable[[str, str], object],
        bounds: Sequence[float],
        replica: str,
        alert: AlertSender | None = None,
        alert_sender: Callable[[str], AlertSender] = AlertSender,
        store: GuardStore | None = None,
        sync_seconds: float = 2.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.rollback = rollback
        self.bounds = tuple(bounds)
        self.replica = replica
        self.alert = alert  # one sender for every upstream (tests); else per alert_url
        self.alert_sender = alert_sender
        self.store = store
        self.sync_seconds = sync_seconds
        self.wall_clock = wall_clock
        self._armed: dict[str, _Armed] = {}
        self._synced: dict[str, float] = {}  # upstream -> when Kong's guard was last read
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
        guard_id: str | None = None,
    ) -> None:
        """Start (or restart, with fresh evidence) the guard of an upstream's canary here."""
        now = self.clock()
        with self._lock:
            self._armed[upstream] = self._fresh(config, now, canary_expected, ramp, guard_id)
            self._synced[upstream] = now  # what was just written is what Kong says

    def _fresh(
        self,
        config: GuardConfig,
        now: float,
        canary_expected: bool,
        ramp: str | None,
        guard_id: str | None,
    ) -> _Armed:
        return _Armed(
            GuardState(config, self.bounds, now),
            canary_expected,
            routes={r: _Route(GuardState(config, self.bounds, now)) for r in config.routes},
            next_look=now + config.window_seconds,
            ramp=ramp,
            guard_id=guard_id,
        )

    def arm_shared(self, upstream: str, config: GuardConfig, *, ramp: str | None = None) -> None:
        """Write the arming to Kong so every process guards, then guard here at once. Kong
        failing to take it leaves a guard in this process only (logged), never none."""
        guard_id = None
        if self.store is not None:
            try:
                guard_id = self.store.arm(upstream, config, ramp)
            except Exception:
                log.exception("guard of %s not shared through Kong: this process guards", upstream)
        # shared: like every follower, it judges missing canary traffic only once it ingests
        # the upstream's batches (they may all go to other processes); alone, it judges
        self.arm(upstream, config, ramp=ramp, guard_id=guard_id, canary_expected=guard_id is None)

    def disarm_shared(self, upstream: str, *, ramp: str | None = None) -> None:
        """After a rollback or promote: no process guards the upstream any more. With
        ``ramp`` (a cancelled ramp's short id): only the guard that ramp armed."""
        if self.store is not None:
            try:
                self.store.disarm(upstream, ramp=ramp)
            except Exception:
                log.exception("guard of %s still in Kong: other processes keep it", upstream)
        with self._lock:
            armed = self._armed.get(upstream)
            if armed is not None and (ramp is None or armed.ramp == ramp):
                del self._armed[upstream]

    def trip_of_ramp(self, upstream: str, ramp: str) -> str | None:
        """The trip message when the guard armed by ``ramp`` (its short id) rolled the canary
        back: this process's, else the trip recorded in Kong by any process."""
        with self._lock:
            armed = self._armed.get(upstream)
            if armed is not None and armed.ramp == ramp and armed.rolled_back:
                if armed.trip is not None:
                    return armed.trip.text
                verdict = armed.state.verdict
                return f"guard tripped on {verdict.metric}: {verdict.message}"
        if self.store is None:
            return None
        try:
            trip = read_trip(self.store.load(upstream))
        except Exception:
            log.exception("could not read the guard's trip of %s from Kong", upstream)
            return None
        return trip.text if trip is not None and trip.ramp == ramp else None

    def disarm(self, upstream: str) -> None:
        with self._lock:
            self._armed.pop(upstream, None)

    def rolling_back(self, upstream: str) -> bool:
        """This process's guard is rolling the upstream back (its own trip): the arming
        stays, tripped, so every process reads the trip and none trips again."""
        with self._lock:
            armed = self._armed.get(upstream)
            return armed is not None and armed.rolling_back

    def view(self, upstream: str) -> dict[str, Any] | None:
        self.sync(upstream)
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
                **({"trip": asdict(armed.trip)} if armed.trip is not None else {}),
                **(
                    {"routes": {name: r.state.view() for name, r in armed.routes.items()}}
                    if armed.routes
                    else {}
                ),
            }

    def sync(self, upstream: str, *, force: bool = False) -> None:
        """Follow the guard Kong holds for ``upstream``; one read per ``sync_seconds`` at most
        (a failed read too: Kong down is not hammered from every batch)."""
        if self.store is None:
            return
        now = self.clock()
        with self._lock:
            last = self._synced.get(upstream)
            if not force and last is not None and now - last < self.sync_seconds:
                return
            self._synced[upstream] = now
        try:
            tags = self.store.load(upstream)
        except Exception as exc:
            log.warning("could not read the guard of %s from Kong: %s", upstream, exc)
            return
        self._follow(upstream, tags, now)

    def _follow(self, upstream: str, tags: Sequence[str], now: float) -> None:
        shared, trip = read_guard(tags), read_trip(tags)
        with self._lock:
            local = self._armed.get(upstream)
            if shared is None or shared.id is None:
                if local is not None and local.guard_id is not None:
                    del self._armed[upstream]  # disarmed by another process
                return
            if local is None or local.guard_id != shared.id:
                # a follower judges "no canary traffic" only once it ingests this upstream's
                # batches: a process that gets none (an API-only replica) knows nothing of it
                local = self._fresh(shared.config, now, False, shared.ramp, shared.id)
                self._armed[upstream] = local
            if trip is not None and trip.guard == shared.id and local.trip is None:
                local.trip = trip
                local.state.adopt(Verdict("tripped", trip.metric, trip.message))
                if not local.rolling_back:
                    local.rolled_back = True  # the process that claimed it rolls back

    def record(self, tally: Tally) -> list[str]:
        """One call per ingested batch; the upstreams this batch made trip."""
        # the series are the upstreams with our tagged targets whose window is open (a canary
        # under way): each is read from Kong at most once per sync_seconds
        for upstream in {key[0] for key in tally.series}:
            self.sync(upstream)
        with self._lock:
            for key, series in tally.series.items():  # (upstream, variant[, route])
                upstream, variant = key[0], key[1]
                guard = self._armed.get(upstream)
                if guard is not None:
                    guard.window.add(variant, series.codes, series.request)
                    guard.canary_expected = True
                    route = guard.routes.get(key[2]) if len(key) > 2 else None
                    if route is not None:
                        route.window.add(variant, series.codes, series.request)
        return self.evaluate()

    def evaluate(self) -> list[str]:
        """Look at every upstream whose window has ended (the ingest and a timer call this)."""
        if self.store is not None:
            with self._lock:
                armed = list(self._armed)
            for upstream in armed:
                self.sync(upstream)
        now = self.clock()
        actions: list[tuple[str, _Armed, Verdict]] = []
        with self._lock:
            for upstream, guard in self._armed.items():
                if now < guard.next_look:
                    continue
                window, guard.window = guard.window, _Window()
                step = guard.state.config.window_seconds
                guard.next_look = now + step
                verdict = guard.state.observe(window.look(now, guard.canary_expected))
                verdict = self._routes_look(guard, now, verdict)
                if verdict.tripped and not (guard.rolled_back or guard.rolling_back):
                    guard.rolling_back = True
                    actions.append((upstream, guard, verdict))
        return [
            upstream for upstream, guard, verdict in actions if self._trip(upstream, guard, verdict)
        ]

    @staticmethod
    def _routes_look(armed: _Armed, now: float, verdict: Verdict) -> Verdict:
        """Each listed route's look (its window ends with the upstream's); the first route to
        trip trips the guard, its message naming the route. A quiet route is no failure
        (its share of the canary may be small): only the upstream judges missing traffic."""
        for name, route in armed.routes.items():
            window, route.window = route.window, _Window()
            seen = route.state.observe(window.look(now, False))
            if seen.tripped and not verdict.tripped:
                verdict = Verdict("tripped", seen.metric, f"route {name}: {seen.message}")
                armed.state.adopt(verdict)
        return verdict

    def _claim(self, upstream: str, armed: _Armed, verdict: Verdict) -> str:
        """Record the trip in Kong before rolling back, so a ramp's poll on any process that
        sees the rollback's cancel mark finds the trip too. Without a shared arming this
        process is the only one: it claims."""
        if self.store is None or armed.guard_id is None or armed.claimed:
            return "claimed"
        trip = GuardTrip(
            armed.guard_id,
            armed.ramp,
            verdict.metric,
            verdict.message,
            self.replica,
            self.wall_clock(),
        )
        outcome = self.store.claim(upstream, armed.guard_id, trip)
        if outcome == "claimed":
            armed.trip = trip
        return outcome

    def _trip(self, upstream: str, armed: _Armed, verdict: Verdict) -> bool:
        message = f"guard tripped on {verdict.metric}: {verdict.message}"
        try:
            outcome = self._claim(upstream, armed, verdict)
            if outcome == "gone":  # disarmed or re-armed meanwhile: follow Kong instead
                with self._lock:
                    armed.rolling_back = False
                    if self._armed.get(upstream) is armed:
                        del self._armed[upstream]
                    self._synced.pop(upstream, None)
                return False
            armed.claimed = outcome == "claimed"
            self.rollback(upstream, message)
        except Exception:  # the next look retries; the guard stays tripped
            log.exception("guard rollback of %s failed; retrying at the next look", upstream)
            with self._lock:
                armed.rolling_back = False
            return False
        with self._lock:
            armed.rolled_back, armed.rolling_back = True, False
        if not armed.claimed:  # another process recorded this trip: it audits and alerts
            return True
        GUARD_TRIPS.labels(upstream, verdict.metric or "unknown").inc()
        audit.info(
            json.dumps(
                {
                    "event": "guard_trip",
                    "upstream": upstream,
                    "metric": verdict.metric,
                    "message": verdict.message,
                    "replica": self.replica,
                    "ramp": armed.ramp,
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
