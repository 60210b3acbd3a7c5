"""Per-variant request rate, 5xx ratio and P99 between two readings of the gateway counters.

The status page and ``kong-canary watch`` show what Kayenta will judge, as a person can read
it: the sidecar's own ``kong_canary_gateway_*`` series (see ``sidecar.gateway.metrics``),
differenced between two readings: the increase over the time between them (``rate()``
without its extrapolation to the window's edges; a counter that went down was reset, as in
promql/functions.go), and ``histogram_quantile()`` over the buckets' increase. Pure
functions: readings in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VariantCounters:
    """One variant's cumulative counters at one moment."""

    codes: Mapping[str, float] = field(default_factory=dict)  # code class ("5xx") -> count
    buckets: tuple[float, ...] = ()  # cumulative latency bucket counts, one per bound


@dataclass(frozen=True)
class GatewayReading:
    """Every variant's counters of one upstream, read at ``at`` (epoch seconds)."""

    at: float
    variants: Mapping[str, VariantCounters]


def histogram_quantile(
    q: float, bounds: Sequence[float], cumulative: Sequence[float]
) -> float | None:
    """Prometheus' ``histogram_quantile`` (promql/quantile.go, ``bucketQuantile``): rank =
    q x count, the first bucket whose cumulative count reaches it, linear interpolation
    inside it; the first bucket starts at 0 (our bounds are positive), a rank in the ``+Inf``
    bucket answers the highest finite bound. None (Prometheus: NaN) without observations."""
    if not cumulative or cumulative[-1] <= 0:
        return None
    total = cumulative[-1]
    rank = q * total
    below = 0.0
    lower = 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            if inside <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / inside
        below, lower = count, bound
    return lower


@dataclass(frozen=True)
class VariantStats:
    rps: float  # requests per second over the window
    error_ratio: float | None  # 5xx / all, None without requests
    p99_ms: float | None  # None without requests

    def as_json(self) -> dict[str, float | None]:
        return {
            "rps": round(self.rps, 3),
            "error_ratio": None if self.error_ratio is None else round(self.error_ratio, 4),
            "p99_ms": None if self.p99_ms is None else round(self.p99_ms, 1),
        }


def variant_stats(
    older: GatewayReading, newer: GatewayReading, bounds: Sequence[float]
) -> dict[str, VariantStats]:
    """Stats per variant over ``older.at .. newer.at``. A counter that went down (a worker
    restarted, its file wiped) counts from zero, as Prometheus treats a reset."""
    seconds = newer.at - older.at
    out: dict[str, VariantStats] = {}
    if seconds <= 0:
        return out
    for variant, now in newer.variants.items():
        before = older.variants.get(variant, VariantCounters())
        codes = {c: _increase(before.codes.get(c, 0.0), n) for c, n in now.codes.items()}
        total = sum(codes.values())
        buckets = _bucket_increase(before.buckets, now.buckets)
        out[variant] = VariantStats(
            rps=total / seconds,
            error_ratio=codes.get("5xx", 0.0) / total if total else None,
            p99_ms=histogram_quantile(0.99, bounds, buckets) if total else None,
        )
    return out


def _increase(before: float, now: float) -> float:
    return now - before if now >= before else now


def _bucket_increase(before: Sequence[float], now: Sequence[float]) -> list[float]:
    if len(before) != len(now) or any(n < b for b, n in zip(before, now, strict=True)):
        return list(now)
    return [n - b for b, n in zip(before, now, strict=True)]
