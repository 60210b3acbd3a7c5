"""What the status page and ``kong-canary watch`` show: one read of every upstream asked for,
with the short history the charts need, kept in this process's memory.

Memory is bounded and losing it is harmless (a restarted sidecar starts fresh charts):

- split history: per upstream, the last hour (``HISTORY_SECONDS``), at most
  ``HISTORY_POINTS`` points (one per change plus one per read at most every
  ``SAMPLE_EVERY`` s), for at most ``MAX_UPSTREAMS`` upstreams (least recently read dropped);
- gateway readings (per-variant counters): the same bounds;
- audit events: the last ``EVENTS_KEPT`` lines of the ``kong_canary.audit`` logger;
- ramp ids: the last ``RAMPS_KEPT`` ramps started or polled through this process. Kong only
  holds a ramp's fingerprint; its schedule (and so progress and ETA) is in the id.

Under gunicorn each worker keeps its own; every point is a timestamped fact about Kong, so
the page merges what successive answers bring.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sidecar.core.ramp_token import RampTokenError, decode, short_id
from sidecar.core.refusals import Refusal
from sidecar.core.split import VARIANTS
from sidecar.core.variant_stats import GatewayReading, VariantCounters, variant_stats
from sidecar.errors import ApiError, answer
from sidecar.ramps import RampService
from sidecar.traffic import TrafficService

HISTORY_SECONDS = 3600.0
HISTORY_POINTS = 720
SAMPLE_EVERY = 5.0
MAX_UPSTREAMS = 64
EVENTS_KEPT = 50
RAMPS_KEPT = 256
STATS_WINDOW = 30.0  # seconds of gateway counters behind the current rate, 5xx and P99
READ_PARALLELISM = 4  # upstreams read from Kong at once for one status answer

AUDIT_LOGGER = "kong_canary.audit"


class AuditTail(logging.Handler):
    """The last audit lines, parsed; one per process, on the audit logger."""

    def __init__(self, kept: int = EVENTS_KEPT) -> None:
        super().__init__(level=logging.INFO)
        self.events: deque[dict[str, Any]] = deque(maxlen=kept)
        # weak: a board (one per app) must not be kept alive by the process-wide tail
        self.listeners: list[weakref.WeakMethod] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = json.loads(record.getMessage())
        except ValueError:
            return
        if not isinstance(entry, dict):
            return
        event = {"at": record.created, **_event_summary(entry)}
        self.events.append(event)
        for ref in list(self.listeners):
            listener = ref()
            if listener is not None:
                listener(event)
        self.listeners[:] = [ref for ref in self.listeners if ref() is not None]


def _event_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """What a person needs from an audit line; writes and contexts stay in the log."""
    keys = ("event", "upstream", "token", "result", "status", "error", "before", "after")
    out = {k: entry[k] for k in keys if entry.get(k) is not None}
    if "after" not in out and isinstance(entry.get("split"), dict):
        out["after"] = entry["split"]
    if isinstance(entry.get("results"), list):
        out["upstreams"] = len(entry["results"])
    return out


_tail_lock = threading.Lock()
_tail: AuditTail | None = None


def audit_tail() -> AuditTail:
    """The process's one tail (apps built in tests share it; events name their upstream)."""
    global _tail
    with _tail_lock:
        if _tail is None:
            _tail = AuditTail()
            logger = logging.getLogger(AUDIT_LOGGER)
            logger.addHandler(_tail)
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)
        return _tail


class _Bounded(OrderedDict[str, deque]):
    """upstream -> points, the least recently touched upstream dropped past the bound."""

    def points(self, upstream: str) -> deque:
        if upstream not in self:
            self[upstream] = deque(maxlen=HISTORY_POINTS)
            while len(self) > MAX_UPSTREAMS:
                self.popitem(last=False)
        self.move_to_end(upstream)
        return self[upstream]


class StatusBoard:
    def __init__(
        self,
        traffic: TrafficService,
        ramps: RampService,
        *,
        gateway_metrics: bool,
        clock: Callable[[], float] = time.time,
        read_gateway: Callable[[], dict[str, GatewayReading]] | None = None,
    ) -> None:
        self.traffic = traffic
        self.ramps = ramps
        self.gateway_metrics = gateway_metrics
        self.clock = clock
        self.read_gateway = read_gateway or (lambda: read_gateway_counters(self.clock()))
        self._lock = threading.Lock()
        self._splits = _Bounded()
        self._readings = _Bounded()
        self._ramps: OrderedDict[str, str] = OrderedDict()  # fingerprint -> ramp id
        self.tail = audit_tail()
        self.tail.listeners.append(weakref.WeakMethod(self._on_audit))

    # ---- what this process learns on the way ----------------------------------------------
    def remember_ramp(self, ramp_id: str) -> None:
        with self._lock:
            self._ramps[short_id(ramp_id)] = ramp_id
            self._ramps.move_to_end(short_id(ramp_id))
            while len(self._ramps) > RAMPS_KEPT:
                self._ramps.popitem(last=False)

    def _on_audit(self, event: dict[str, Any]) -> None:
        """A change made through this process is a point of the chart at once."""
        upstream, after = event.get("upstream"), event.get("after")
        if (
            isinstance(upstream, str)
            and isinstance(after, dict)
            and event.get("result") != "dry_run"
        ):
            self._add_split(upstream, self.clock(), after, force=True)

    def _add_split(self, upstream: str, at: float, split: dict | None, *, force: bool) -> None:
        with self._lock:
            points = self._splits.points(upstream)
            _trim(points, at)
            if points and not force:
                last_at, last_split = points[-1]
                if last_split == split and at - last_at < SAMPLE_EVERY:
                    return
            points.append((at, split))

    # ---- the view ---------------------------------------------------------------------------
    def view(
        self, upstream: str | None = None, allows: Callable[[str], bool] = lambda _: True
    ) -> dict[str, Any]:
        """``allows``: the caller's upstream allow-list; others are neither read nor shown."""
        now = self.clock()
        names = [upstream] if upstream else [u.name for u in self.traffic.managed_upstreams()]
        names = [n for n in names if allows(n)]
        gateway = self._gateway(now, names)

        def read(name: str) -> dict[str, Any] | ApiError:
            try:
                return self._upstream(name, now, gateway)
            except (ApiError, Refusal) as exc:
                return answer(exc)

        # Each upstream costs Kong two GETs (and a ramp's status two more): a few at once, in
        # the order they were listed.
        with ThreadPoolExecutor(max(1, min(READ_PARALLELISM, len(names)))) as pool:
            results = list(pool.map(read, names))
        entries, problems = [], []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, ApiError):
                if upstream:  # the one asked for: its error is the answer
                    raise result
                problems.append({"upstream": name, **result.body()})
            else:
                entries.append(result)
        events = [
            e
            for e in list(self.tail.events)  # one C-level copy: other threads append
            if (upstream is None or e.get("upstream") == upstream) and allows(e.get("upstream", ""))
        ]
        return {
            "generated_at": now,
            "gateway_metrics": self.gateway_metrics,
            "history": {"seconds": HISTORY_SECONDS, "points": HISTORY_POINTS},
            "upstreams": entries,
            "problems": problems,
            "events": events[-EVENTS_KEPT:],
        }

    def _upstream(self, name: str, now: float, gateway: dict[str, Any]) -> dict[str, Any]:
        described = self.traffic.describe(name)
        self._add_split(described["upstream"], now, described["split"], force=False)
        with self._lock:
            history = [
                {"at": at, "split": split}
                for at, split in self._splits.points(described["upstream"])
            ]
        described["ramp"] = self._ramp(described.get("ramp"))
        described["history"] = history
        described["metrics"] = gateway.get(
            described["upstream"],
            {
                "available": False,
                "message": "gateway metrics are on, but no http-log entries yet"
                if self.gateway_metrics
                else "no gateway metrics (KONG_CANARY_GATEWAY_METRICS is off and no "
                "http-log window is open)",
                "now": {},
                "series": [],
            },
        )
        return described

    def _ramp(self, fingerprint: str | None) -> dict[str, Any] | None:
        if fingerprint is None:
            return None
        with self._lock:
            ramp_id = self._ramps.get(fingerprint)
        if ramp_id is None:
            return {
                "fingerprint": fingerprint,
                "id": None,
                "status": None,
                "message": "a ramp drives this upstream; its schedule is not known to this "
                "process (started through another worker or replica)",
            }
        try:
            view = self.ramps.status(ramp_id, drive=False)
            schedule = decode(ramp_id, self.ramps.secret)
        except (ApiError, Refusal, RampTokenError) as exc:
            return {"fingerprint": fingerprint, "id": ramp_id, "status": None, "message": str(exc)}
        return {
            "fingerprint": fingerprint,
            **view.as_json(),
            "started_at": schedule.start_at,
            "ends_at": schedule.ends_at,
            "steps": len(schedule.steps),
        }

    def _gateway(self, now: float, upstreams: list[str]) -> dict[str, Any]:
        """Stats of each upstream from this read and the earlier ones kept. An upstream
        with no series yet is remembered as all zero, so its first requests count."""
        from sidecar.gateway.metrics import BOUNDS

        out: dict[str, Any] = {}
        counters = self.read_gateway()
        for upstream in upstreams:
            reading = counters.get(upstream) or GatewayReading(now, {})
            with self._lock:
                points = self._readings.points(upstream)
                _trim(points, now)
                if not points or reading.at - points[-1].at >= SAMPLE_EVERY:
                    points.append(reading)
                readings = [*points]
                if readings[-1] is not reading:
                    readings.append(reading)
            if not reading.variants:
                continue
            series = [
                {"at": b.at, "variants": _stats_json(variant_stats(a, b, BOUNDS))}
                for a, b in itertools.pairwise(readings)
            ]
            earlier = [r for r in readings[:-1] if reading.at - r.at <= STATS_WINDOW]
            window = earlier[0] if earlier else (readings[-2] if len(readings) > 1 else reading)
            current = _stats_json(variant_stats(window, reading, BOUNDS))
            out[upstream] = {
                "available": True,
                "message": f"rates over the last {reading.at - window.at:.0f} s"
                if current
                else "collecting: a second reading is needed for rates",
                "now": current,
                "series": series,
            }
        return out


def _trim(points: deque, now: float) -> None:
    while points and now - _at(points[0]) > HISTORY_SECONDS:
        points.popleft()


def _at(point: Any) -> float:
    return point.at if isinstance(point, GatewayReading) else point[0]


def _stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    return {v: stats[v].as_json() for v in VARIANTS if v in stats}


def read_gateway_counters(now: float) -> dict[str, GatewayReading]:
    """The gateway series of every upstream, merged across gunicorn workers like a scrape."""
    from sidecar.gateway.metrics import BOUNDS, REQUEST_LATENCY_NAME, REQUESTS_NAME
    from sidecar.metrics import scrape_registry

    families: Iterable[Any] = scrape_registry().collect()
    codes: dict[tuple[str, str], dict[str, float]] = {}
    buckets: dict[tuple[str, str], dict[float, float]] = {}
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("upstream", ""), labels.get("variant", ""))
            if sample.name == REQUESTS_NAME:
                per_class = codes.setdefault(key, {})
                per_class[labels["code_class"]] = (
                    per_class.get(labels["code_class"], 0.0) + sample.value
                )
            elif sample.name == f"{REQUEST_LATENCY_NAME}_bucket":
                per_bound = buckets.setdefault(key, {})
                bound = float(labels["le"])
                per_bound[bound] = per_bound.get(bound, 0.0) + sample.value
    by_upstream: dict[str, dict[str, VariantCounters]] = {}
    for upstream, variant in {*codes, *buckets}:
        per_bound = buckets.get((upstream, variant), {})
        by_upstream.setdefault(upstream, {})[variant] = VariantCounters(
            codes=codes.get((upstream, variant), {}),
            buckets=tuple(per_bound.get(b, 0.0) for b in BOUNDS) if per_bound else (),
        )
    return {u: GatewayReading(now, variants) for u, variants in by_upstream.items()}
