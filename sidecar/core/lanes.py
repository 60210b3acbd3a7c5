"""Which thread pool serves a request, and whether it may still wait for one.

Two lanes per worker process. ``local`` serves the paths that never call Kong (liveness and
the metrics scrape) on threads of their own, so no number of requests stuck on a slow or
unreachable Kong can delay ``/healthz``. ``kong`` serves everything else (``/readyz``
included: it asks Kong). Each lane holds at most ``threads`` running plus ``queue`` waiting
requests; one more is answered 503 at once, which Orca's webhook stage retries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Lane(enum.Enum):
    LOCAL = "local"
    KONG = "kong"


LOCAL_PATHS = frozenset({"/healthz", "/metrics"})


def lane_for(method: str, path: str) -> Lane:
    return Lane.LOCAL if method in ("GET", "HEAD") and path in LOCAL_PATHS else Lane.KONG


@dataclass(frozen=True)
class LaneLimit:
    threads: int
    queue: int

    def admits(self, admitted: int) -> bool:
        """``admitted``: requests of this lane running or waiting for a thread now."""
        return admitted < self.threads + self.queue
