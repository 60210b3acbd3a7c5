"""Run a metric's query the way Kayenta's Prometheus provider does (``PrometheusRemoteService``).

``GET /api/v1/query_range?query=&start=<ISO>&end=<ISO>&step=<seconds>``; the caller passes the
``httpx.Client`` (with ``base_url`` = Prometheus) so tests and CLI control timeouts and transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from sidecar.kayenta.metricsets import MetricSet, from_query_range
from sidecar.kayenta.template import CanaryScope, build_query


class PrometheusQueryError(RuntimeError):
    """Prometheus refused the query (bad PromQL is a 4xx that Kayenta does not retry)."""


def query_range(
    client: httpx.Client, query: str, start: str, end: str, step: int
) -> dict[str, Any]:
    resp = client.get(
        "/api/v1/query_range", params={"query": query, "start": start, "end": end, "step": step}
    )
    return _answer(resp, query)


def query_sum(client: httpx.Client, query: str) -> float:
    """An instant query (``/api/v1/query``) of one aggregated series; no series reads as 0."""
    body = _answer(client.get("/api/v1/query", params={"query": query}), query)
    result = body.get("data", {}).get("result") or []
    if not result:
        return 0.0
    try:
        return float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        raise PrometheusQueryError(f"not one vector sample: {result[:1]} for {query}") from None


def _answer(resp: httpx.Response, query: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        # a proxy's HTML 502, or a truncated answer: say what came back, not where parsing broke
        text = resp.text.strip()[:200] or resp.reason_phrase
        raise PrometheusQueryError(f"{resp.status_code}: not JSON ({text}) for {query}") from None
    if not isinstance(body, dict):
        raise PrometheusQueryError(f"{resp.status_code}: not a JSON object for {query}")
    if resp.status_code != 200 or body.get("status") != "success":
        raise PrometheusQueryError(f"{resp.status_code}: {body.get('error', body)} for {query}")
    return body


def fetch_metric(
    client: httpx.Client,
    metric: Mapping[str, Any],
    templates: Mapping[str, str] | None,
    scope: CanaryScope,
) -> list[MetricSet]:
    """Expand the metric's template for one scope and return Kayenta's metric sets."""
    query = build_query(metric["query"], templates, scope)
    return from_query_range(query_range(client, query, scope.start, scope.end, scope.step))
