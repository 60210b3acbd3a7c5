"""The gateway series, and how a whole tally reaches them in a few calls.

Names are a contract with the Kayenta configs – keep them:

- ``kong_canary_gateway_requests_total{upstream,variant,route,code_class}``
- ``kong_canary_gateway_request_latency_ms{upstream,variant,route}`` (histogram; Kong's
  ``latencies.request``: client first byte to last byte sent, Kong included)
- ``kong_canary_gateway_upstream_latency_ms{upstream,variant,route}`` (histogram; Kong's
  ``latencies.proxy``: time waiting for the target, -1 when no target answered, then skipped)
- ``kong_canary_gateway_route_overflow_total{upstream}`` (entries counted under
  ``route="other"`` because the upstream already had ``max_routes`` routes in this process)
- ``kong_canary_gateway_unmapped_total{upstream,reason}`` (a known upstream, but no variant)
- ``kong_canary_gateway_rejected_total{reason}`` (bad input; ``batch_*`` reasons count
  batches, the others entries: ``unknown_upstream``, ``unmanaged_upstream``,
  ``invalid_upstream`` and ``upstream_not_allowed`` among them, so an entry naming anything
  but a managed upstream's exact name is counted without a label of its own)

The ``upstream`` label is bounded: ``VariantResolver.resolve`` admits only names Kong stores
(exactly, as its balancer matches them) whose targets carry our tags. The ``route`` label
(the entry's route name, else id, else ``""``) is capped per upstream at ``max_routes``
(``GATEWAY_MAX_ROUTES``) by ``sidecar.core.route_cap``; later routes count under
``route="other"``. The cap is per process: every gunicorn worker of every replica admits its
own first ``max_routes`` routes, so an upstream shows at most ``workers x replicas x
max_routes`` route names plus ``""`` and ``"other"`` – exactly ``max_routes`` when traffic
reaches the workers in the same order (the usual case: the busiest routes come first
everywhere). Service-level queries sum over the label (``sum by (variant)``), so they read
the same with or without it.

Multiprocess mode (``sidecar/metrics.py``; prometheus/client_python
``docs/content/multiprocess/_index.md``): the metrics are module-level Counters and Histograms
only, so every gunicorn worker writes its own files and a scrape sums them; replicas are
summed by the query (``sum by (variant) (rate(...))``). Children are cached per label set – a
child keeps working after a fork, because prometheus_client's mmap value re-opens its file when
the pid changes (``values.py``, ``__check_for_pid_change``).

Buckets: histogram_quantile interpolates linearly inside the bucket the quantile falls in, so
its error is bounded by the bucket's width. Bounds step by at most x1.34 from 3 ms to 10 s (a
1-2-2.5-3-4-5-6-8-10 ladder, plus 1.2 and 1.5 in each decade), so a P99 is off by at most
~1/3 of its value and typically far less – finer than the 40 ms-on-10 ms or 2x shifts a canary
judgement looks for, while Kong's own upstream buckets (25, 50, 80, 100, 250 ...) would put a
10 ms and a 24 ms P99 in the same bucket. 42 bounds + ``+Inf``; up to 60 s (Kong's default
proxy timeouts). Cost: 45 series per upstream, variant, route and histogram, per worker file;
a route, once seen, is primed for every variant and code class (about 285 series), so the
cap bounds an upstream at about ``285 x (max_routes + 2)`` series per replica.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from sidecar.core.route_cap import NO_ROUTE, OVERFLOW, route_labels
from sidecar.core.split import VARIANTS
from sidecar.gateway.entries import CODE_CLASS, Series, SeriesKey, Tally

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8,
    10, 12, 15, 20, 25, 30, 40, 50, 60, 80,
    100, 120, 150, 200, 250, 300, 400, 500, 600, 800,
    1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000,
    10000, 15000, 20000, 30000, 60000,
)  # fmt: skip
BOUNDS: tuple[float, ...] = (*(float(b) for b in LATENCY_BUCKETS_MS), float("inf"))

REQUESTS_NAME = "kong_canary_gateway_requests_total"
REQUEST_LATENCY_NAME = "kong_canary_gateway_request_latency_ms"
UPSTREAM_LATENCY_NAME = "kong_canary_gateway_upstream_latency_ms"
UNMAPPED_NAME = "kong_canary_gateway_unmapped_total"
REJECTED_NAME = "kong_canary_gateway_rejected_total"
ROUTE_OVERFLOW_NAME = "kong_canary_gateway_route_overflow_total"
DEFAULT_MAX_ROUTES = 50
# Distinct overflowed route names remembered per upstream for the split's warning (the
# counter counts every entry; past this many names the warning says "at least").
OVERFLOW_NAMES_KEPT = 1000


def _define(registry: CollectorRegistry | None) -> tuple[Any, ...]:
    return (
        Counter(
            REQUESTS_NAME,
            "Requests Kong proxied, by the variant of the target that served them (http-log)",
            ["upstream", "variant", "route", "code_class"],
            registry=registry,
        ),
        Histogram(
            REQUEST_LATENCY_NAME,
            "Kong's latencies.request per variant, in milliseconds (http-log)",
            ["upstream", "variant", "route"],
            buckets=LATENCY_BUCKETS_MS,
            registry=registry,
        ),
        Histogram(
            UPSTREAM_LATENCY_NAME,
            "Kong's latencies.proxy (waiting for the target) per variant, in ms (http-log)",
            ["upstream", "variant", "route"],
            buckets=LATENCY_BUCKETS_MS,
            registry=registry,
        ),
        Counter(
            UNMAPPED_NAME,
            "http-log entries of a known upstream that could not be given a variant",
            ["upstream", "reason"],
            registry=registry,
        ),
        Counter(
            REJECTED_NAME,
            "http-log input refused: batch_* reasons count batches, the others entries",
            ["reason"],
            registry=registry,
        ),
        Counter(
            ROUTE_OVERFLOW_NAME,
            'http-log entries counted under route="other": their route came after the '
            "upstream's first max_routes routes (GATEWAY_MAX_ROUTES) in this process",
            ["upstream"],
            registry=registry,
        ),
    )


(REQUESTS, REQUEST_LATENCY, UPSTREAM_LATENCY, UNMAPPED, REJECTED, ROUTE_OVERFLOW) = _define(
    REGISTRY
)


class GatewayMetrics:
    """Applies a Tally with one call per series that changed, not one per entry.

    Histograms are fed per bucket: ``Histogram.observe`` does one locked mmap write for the
    sum and one for the bucket per observation; here a batch costs one write per non-empty
    bucket. That reaches into ``_buckets``/``_sum``/``_upper_bounds`` (stable since
    client_python 0.4, still in 0.26); ``_check_internals`` fails at start-up if a future
    version changes them, and a test pins the result against ``observe``.
    """

    def __init__(
        self,
        requests: Counter = REQUESTS,
        request_latency: Histogram = REQUEST_LATENCY,
        upstream_latency: Histogram = UPSTREAM_LATENCY,
        unmapped: Counter = UNMAPPED,
        rejected: Counter = REJECTED,
        route_overflow: Counter = ROUTE_OVERFLOW,
        *,
        max_routes: int = DEFAULT_MAX_ROUTES,
    ) -> None:
        self._requests = requests
        self._request_latency = request_latency
        self._upstream_latency = upstream_latency
        self._unmapped = unmapped
        self._rejected = rejected
        self._route_overflow = route_overflow
        self.max_routes = max_routes
        self._routes: dict[str, set[str]] = {}  # upstream -> routes admitted to the label
        self._overflowed: dict[str, set[str]] = {}  # upstream -> routes counted as "other"
        self._routes_lock = threading.Lock()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._primed: set[str] = set()
        _check_internals(request_latency)
        _check_internals(upstream_latency)

    @classmethod
    def in_registry(
        cls, registry: CollectorRegistry, *, max_routes: int = DEFAULT_MAX_ROUTES
    ) -> GatewayMetrics:
        """Fresh metric objects in their own registry (tests, benchmarks)."""
        return cls(*_define(registry), max_routes=max_routes)

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if isinstance(metric, Histogram):
                _check_child(child)
            self._children[key] = child
        return child

    def record(self, result: Tally) -> None:
        child = self._child
        for (upstream, variant, route), series in self._capped(result.series).items():
            for code_class, count in series.codes.items():
                child(self._requests, (upstream, variant, route, code_class)).inc(count)
            _add_observations(
                child(self._request_latency, (upstream, variant, route)),
                series.request,
                series.request_sum,
            )
            if series.upstream_count:
                _add_observations(
                    child(self._upstream_latency, (upstream, variant, route)),
                    series.upstream,
                    series.upstream_sum,
                )
        for (upstream, reason), count in result.unmapped.items():
            child(self._unmapped, (upstream, reason)).inc(count)
        for reason, count in result.rejected.items():
            child(self._rejected, (reason,)).inc(count)

    def _capped(self, series: dict[SeriesKey, Series]) -> dict[SeriesKey, Series]:
        """The tally's series with routes past the cap folded into ``route="other"``;
        newly admitted routes are primed, overflowed entries counted."""
        routes: dict[str, list[str]] = {}
        for upstream, _, route in series:
            routes.setdefault(upstream, []).append(route)
        labels: dict[str, dict[str, str]] = {}
        admitted_now: list[tuple[str, str]] = []
        with self._routes_lock:
            for upstream, seen in routes.items():
                admitted = self._routes.setdefault(upstream, set())
                labels[upstream], new = route_labels(admitted, seen, self.max_routes)
                admitted.update(new)
                admitted_now += [(upstream, r) for r in new]
                overflowed = self._overflowed.setdefault(upstream, set())
                for route, label in labels[upstream].items():
                    if label != route and len(overflowed) < OVERFLOW_NAMES_KEPT:
                        overflowed.add(route)
        for upstream, route in admitted_now:
            self._prime_route(upstream, route)
        out: dict[SeriesKey, Series] = {}
        for (upstream, variant, route), s in series.items():
            label = labels[upstream][route]
            if label == route:
                out[(upstream, variant, route)] = s
                continue
            self._child(self._route_overflow, (upstream,)).inc(s.count)
            key = (upstream, variant, label)
            merged = out.get(key)
            if merged is None:
                merged = out[key] = Series.empty(len(s.request))
                self._prime_route(upstream, OVERFLOW)
            merged.add(s)
        return out

    def overflow(self, upstream: str) -> tuple[int, int]:
        """``(routes admitted, routes overflowed)`` of an upstream in this process."""
        with self._routes_lock:
            return (
                len(self._routes.get(upstream, ())),
                len(self._overflowed.get(upstream, ())),
            )

    def route_warnings(self, upstream: str) -> list[str]:
        """For ``GET …/split``: routes of the upstream this process counted as ``other``."""
        _, overflowed = self.overflow(upstream)
        if not overflowed:
            return []
        many = "at least " if overflowed >= OVERFLOW_NAMES_KEPT else ""
        return [
            f"gateway metrics: {many}{overflowed} route(s) of {upstream} came after its first "
            f'{self.max_routes} (gateway_max_routes) and are counted under route="other" '
            f"({ROUTE_OVERFLOW_NAME} counts their entries); service-level figures are "
            "complete, per-route ones exist only for the first routes"
        ]

    def _prime_route(self, upstream: str, route: str) -> None:
        for variant in VARIANTS:
            for code_class in CODE_CLASS.values():
                self._child(self._requests, (upstream, variant, route, code_class))
            self._child(self._request_latency, (upstream, variant, route))
            self._child(self._upstream_latency, (upstream, variant, route))

    def prime(self, upstream: str) -> None:
        """Every series of the upstream, at 0, once per process.

        ``rate()`` needs two samples of a series: one that first appears at 3 (a canary's
        first three 5xx) never shows an increase for them, so the errors Kayenta should see
        would vanish. Created at 0 before the data comes, every later increase counts. The
        window primes when it opens (before Kong sends anything); ingest primes an upstream
        the first time this process sees it, so at least the classes and variants that come
        later count in full. Per route: a route is primed (every variant and class) when it
        is first admitted, and since the window is live before traffic moves (the preparer
        waits for a first batch, ``sidecar.gateway.window``), the stable traffic's first
        batch primes each busy route before any canary request is counted on it."""
        if upstream in self._primed:
            return
        self._prime_route(upstream, NO_ROUTE)
        self._primed.add(upstream)

    def reject_batch(self, reason: str) -> None:
        self._child(self._rejected, (f"batch_{reason}",)).inc()


def _check_internals(histogram: Histogram) -> None:
    """Checks the parent only: a probe child would leave a zero series in the mmap files."""
    if tuple(getattr(histogram, "_upper_bounds", ())) != BOUNDS:
        raise RuntimeError(
            "prometheus_client's Histogram internals changed (_upper_bounds): "
            "sidecar.gateway.metrics cannot feed histograms in bulk with this version"
        )


def _check_child(child: Any) -> None:
    if len(getattr(child, "_buckets", ())) != len(BOUNDS) or not hasattr(child, "_sum"):
        raise RuntimeError(
            "prometheus_client's Histogram internals changed (_buckets/_sum): "
            "sidecar.gateway.metrics cannot feed histograms in bulk with this version"
        )


def _add_observations(child: Any, counts: Sequence[int], total: float) -> None:
    """Equivalent to ``observe`` once per counted value: buckets are stored non-cumulative
    and summed at collection (``Histogram._child_samples``)."""
    buckets = child._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    child._sum.inc(total)
