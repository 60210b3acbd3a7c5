"""Prometheus metrics, correct under several gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (by ``kong-canary serve`` before any worker
starts, or by the container env) every worker writes its own files and ``/metrics``
merges them with a fresh ``MultiProcessCollector`` per scrape. Gauges say how they
merge: the split gauge is ``mostrecent`` – the last worker that changed an
upstream knows its split – so a scrape never shows one series per pid.
"""

from __future__ import annotations

import os

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
    "Calls made to Kong's Admin API, by outcome (ok, or the error class)",
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


def record_split(upstream: str, percentages: dict[str, float] | None) -> None:
    for variant in ("stable", "baseline", "canary"):
        value = 0.0 if percentages is None else percentages.get(variant, 0.0)
        SPLIT_PERCENT.labels(upstream=upstream, variant=variant).set(value)


def render() -> tuple[bytes, str]:
    """The exposition for one scrape: merged across workers when in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
