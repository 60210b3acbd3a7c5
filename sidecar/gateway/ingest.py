"""One posted body -> counted metrics and the answer Kong's http-log plugin gets.

Status contract (Kong's queue retries a batch on >= 300 in 3.x, >= 400 in 2.8 –
``send_entries``/``send_payload`` in ``kong/plugins/http-log/handler.lua``):

- 200: the batch was read; every entry is counted as accepted, unmapped or rejected and
  the body says how many of each and why. A batch with some bad entries is still 200:
  retrying it would count the good ones twice and the bad ones stay bad.
- 400: not JSON / not an array or object / empty (nothing to count, nothing to retry).
- 404: the ``upstream`` override names no Kong upstream. 422: every entry was rejected.
- 503 (from the resolver): Kong unreachable and no address map yet; Kong retries later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.errors import ApiError
from sidecar.gateway.addresses import VariantResolver, unknown_upstream
from sidecar.gateway.entries import Tally, parse_batch, tally
from sidecar.gateway.metrics import BOUNDS, GatewayMetrics


@dataclass(frozen=True)
class IngestResult:
    entries: int
    result: Tally

    def as_json(self) -> dict[str, Any]:
        unmapped: dict[str, int] = {}
        for (_, reason), count in self.result.unmapped.items():
            unmapped[reason] = unmapped.get(reason, 0) + count
        out: dict[str, Any] = {
            "entries": self.entries,
            "accepted": self.result.accepted,
            "unmapped": self.result.unmapped_count,
            "rejected": self.result.rejected_count,
            "unmapped_reasons": unmapped,
            "rejected_reasons": dict(self.result.rejected),
        }
        if self.result.unknown_upstreams:
            out["unknown_upstreams"] = sorted(self.result.unknown_upstreams)
        return out


class GatewayIngest:
    """Shared per process (the resolver's cache and the metric children live here)."""

    def __init__(self, resolver: VariantResolver, metrics: GatewayMetrics | None = None):
        self.resolver = resolver
        self.metrics = metrics or GatewayMetrics()

    def ingest(
        self,
        body: bytes | str,
        *,
        upstream: str | None = None,
        allowed: Callable[[str], bool] | None = None,
    ) -> IngestResult:
        try:
            entries = parse_batch(body)
        except ApiError as exc:
            self.metrics.reject_batch(exc.code)
            raise
        if upstream is not None:
            name = self.resolver.name_of(upstream)  # an id, in any case, becomes the name
            if name is None:
                self.metrics.reject_batch("unknown_upstream")
                raise unknown_upstream(upstream)
            upstream = name
        counted = tally(entries, self.resolver, BOUNDS, upstream=upstream, allowed=allowed)
        for name in {key[0] for key in counted.series}:
            self.metrics.prime(name)
        self.metrics.record(counted)
        result = IngestResult(len(entries), counted)
        if counted.accepted == 0 and not counted.unmapped:
            raise ApiError(
                422,
                "no_valid_entries",
                f"none of the {len(entries)} entries could be counted",
                details=result.as_json(),
            )
        return result
