"""Which thread pool serves a request, and whether it may still wait for one.

Three lanes per worker process. ``health`` serves ``/healthz`` and ``metrics`` the
Prometheus scrape, each on threads of its own: neither calls Kong, so no number of requests
stuck on a slow or unreachable Kong can delay the liveness probe or blind the dashboards
during the outage, and a slow scrape (thousands of series) cannot delay the probe either.
``kong`` serves everything else (``/readyz`` included: it asks Kong). Each lane holds at
most ``threads`` running plus ``queue`` waiting requests; one more is answered 503 at once,
which Orca's webhook stage retries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Lane(enum.Enum):
    HEALTH = "health"
    METRICS = "metrics"
    KONG = "kong"


_OWN_LANES = {"/healthz": Lane.HEALTH, "/metrics": Lane.METRICS}


def lane_for(method: str, path: str) -> Lane:
    if method not in ("GET", "HEAD"):
        return Lane.KONG
    return _OWN_LANES.get(path, Lane.KONG)


@dataclass(frozen=True)
class LaneLimit:
    threads: int
    queue: int

    def admits(self, admitted: int) -> bool:
        """``admitted``: requests of this lane running or waiting for a thread now."""
        return admitted < self.threads + self.queue
