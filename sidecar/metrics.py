"""Prometheus metrics, correct under several gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (by ``kong-canary serve`` before any worker
starts, or by the container env) every worker writes its own files and ``/metrics``
merges them with a fresh ``MultiProcessCollector`` per scrape. Gauges say how they
merge: the split gauge is ``mostrecent`` – the last worker that changed an
upstream knows its split – so a scrape never shows one series per pid.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from sidecar.core.split import VARIANTS

# HTTP methods a label may name (RFC 9110 section 9 plus PATCH); any other token a client
# sends becomes ``other``, so a flood of invented methods cannot mint series.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER = "other"


def method_label(method: str) -> str:
    """The method as a label value, from a bounded set."""
    return method if method in KNOWN_METHODS else OTHER


HTTP_REQUESTS = Counter(
    "kong_canary_http_requests_total",
    "Requests served by the sidecar's API",
    ["method", "endpoint", "status"],
)
HTTP_DURATION = Histogram(
    "kong_canary_http_request_duration_seconds",
    "Time to serve a request of the sidecar's API",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_SHED = Counter(
    "kong_canary_http_shed_total",
    "Requests the serving loop answered itself (overloaded, request_timeout, too_large) and "
    "connections it closed for a new one (evicted); none reached the API",
    ["reason"],
)
KONG_REQUESTS = Counter(
    "kong_canary_kong_requests_total",
    "Answers from Kong's Admin API, by method and outcome: the HTTP status class (2xx, 4xx, "
    "5xx); a call that got no answer (timeout, reset) has none and is not counted",
    ["method", "outcome"],
)
KONG_DURATION = Histogram(
    "kong_canary_kong_request_duration_seconds",
    "Latency of calls to Kong's Admin API",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SPLIT_PERCENT = Gauge(
    "kong_canary_upstream_split_percent",
    "Current percent of traffic per variant of each managed upstream (set when it changes)",
    ["upstream", "variant"],
    multiprocess_mode="mostrecent",
)
SPLIT_CHANGES = Counter(
    "kong_canary_split_changes_total",
    "Changes of an upstream's split, by operation and result",
    ["upstream", "operation", "result"],
)


class Series:
    """A labelled metric's children, each asked of ``prometheus_client`` once per process.

    ``labels()`` checks its arguments, converts every value to ``str``, takes the metric's
    lock and builds the key on every call: six calls per ``PUT …/split`` (the request
    counter and histogram, the change counter, the split gauge's three variants). The child it
    returns for given values is always the same object (nothing here ever calls ``remove``
    or ``clear`` on a series), so the first answer is kept in a dict keyed by the values as
    passed. The Kong client's two series go through it too (``kong/build.py``, two lookups
    per Kong call). The dict grows as the metric's own table of children does, one entry per
    series (label values are bounded where they are chosen: ``method_label``, the URL rule,
    ``CONFIRMED_UPSTREAMS``).
    """

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        """``metric.labels(*values)``: the same child, without the lookup after the first."""
        try:
            return self._children[values]
        except KeyError:
            child = self._children[values] = self.metric.labels(*values)
            return child


HTTP_REQUEST_SERIES = Series(HTTP_REQUESTS)
HTTP_DURATION_SERIES = Series(HTTP_DURATION)
SPLIT_PERCENT_SERIES = Series(SPLIT_PERCENT)
SPLIT_CHANGE_SERIES = Series(SPLIT_CHANGES)
KONG_DURATION_SERIES = Series(KONG_DURATION)
KONG_REQUEST_SERIES = Series(KONG_REQUESTS)


class ConfirmedUpstreams:
    """Upstream names Kong itself returned to this process: the only values the ``upstream``
    label of the API's metrics takes. A name in a refused request is the caller's text (any
    spelling, any id, a name Kong never had) and is counted under ``""`` instead (Prometheus
    reads an empty label as no label), so refusals cannot mint series. Bounded by the number
    of upstreams in Kong; forgotten wholesale past ``limit`` (the series stay, only a later
    refusal on such an upstream loses its name)."""

    def __init__(self, limit: int = 4096) -> None:
        self._names: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def confirm(self, name: str) -> str:
        """``name`` came from Kong (a change's result, an entity read): it may be a label."""
        if name not in self._names:
            with self._lock:
                if len(self._names) >= self._limit:
                    self._names.clear()
                self._names.add(name)
        return name

    def label(self, name: str) -> str:
        return name if name in self._names else UNCONFIRMED


UNCONFIRMED = ""
CONFIRMED_UPSTREAMS = ConfirmedUpstreams()


def record_split(upstream: str, percentages: dict[str, float] | None) -> None:
    for variant in VARIANTS:
        value = 0.0 if percentages is None else percentages.get(variant, 0.0)
        SPLIT_PERCENT_SERIES(upstream, variant).set(value)


def scrape_registry() -> CollectorRegistry:
    """What one scrape reads: every worker's files merged in multiprocess mode (a fresh
    collector each time, as prometheus_client's multiprocess docs do), else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition for one scrape: merged across workers when in multiprocess mode."""
    return generate_latest(scrape_registry()), CONTENT_TYPE_LATEST
