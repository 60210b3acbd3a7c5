"""The canary window: Kong's http-log on while an upstream carries canary traffic, off after.

``GatewayWindow.observe`` is a ``TrafficService`` observer (``gateway_metrics`` on): a change
to a split with baseline or canary traffic opens the window on every Kong service whose
``host`` is the upstream (idempotent: a ramp step finds the plugins as they should be and
writes nothing); a change back to stable-only (rollback, promote, lease expiry) closes it.

What a production user gets when the window cannot be changed: the split has already reached
Kong when observers run, and traffic is what the pipeline asked for; failing the stage then
would make Orca retry or roll back a change that worked. So the split answers 200 and carries
a ``warnings`` entry saying what is missing and how to fix it (the explicit
``/v1/upstreams/{u}/gateway-metrics`` endpoints), the failure is logged, and
``kong_canary_gateway_window_changes_total{result="failed"}`` counts it for alerting. Kayenta
then finds no sidecar-gateway data and judges NODATA – visible, never a silent pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from sidecar.core.split import Split
from sidecar.errors import ApiError, from_kong_error
from sidecar.gateway.plugin import attach_plugins, detach_http_log, managed_plugins
from sidecar.kong.errors import KongError
from sidecar.metrics import CONFIRMED_UPSTREAMS
from sidecar.settings import ApiToken, Settings
from sidecar.traffic import ChangeEvent

log = logging.getLogger("kong_canary.gateway")
INGEST_PATH = "/v1/kong-log"

WINDOW_CHANGES = Counter(
    "kong_canary_gateway_window_changes_total",
    "http-log attach (open) and detach (close) on an upstream's Kong services, by result",
    ["upstream", "operation", "result"],
)


@dataclass(frozen=True)
class IngestConfig:
    """Where Kong posts and with which token (``gateway_ingest_url``/``_token``)."""

    endpoint: str
    token: ApiToken
    batch_size: int = 200
    flush_seconds: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestConfig | None:
        """None when not configured (settings validation already refused half a config)."""
        base = settings.gateway_ingest_base
        token = next((t for t in settings.tokens if t.token == settings.gateway_ingest_token), None)
        if base is None or token is None:
            return None
        return cls(endpoint=base.rstrip("/") + INGEST_PATH, token=token)


class GatewayWindow:
    def __init__(
        self,
        kong: Any,
        ingest: IngestConfig,
        *,
        prime: Callable[[str], None] = lambda upstream: None,
    ) -> None:
        self.kong = kong
        self.ingest = ingest
        self.prime = prime

    def open(self, upstream: str) -> list[dict[str, str]]:
        """Attach (or confirm) our http-log on the upstream's services; ApiError/KongError."""
        if not self.ingest.token.allows(upstream):
            raise ApiError(
                409,
                "ingest_token_not_allowed",
                f"the gateway ingest token {self.ingest.token.name!r} may not report on "
                f"upstream {upstream!r}: Kong's batches would be refused",
            )
        try:
            attached = attach_plugins(
                self.kong,
                upstream,
                endpoint=self.ingest.endpoint,
                token=self.ingest.token.token,
                batch_size=self.ingest.batch_size,
                flush_seconds=self.ingest.flush_seconds,
            )
        except (ApiError, KongError):
            WINDOW_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "open", "failed").inc()
            raise
        self.prime(upstream)  # series at 0 before the first batch, so rate() sees it all
        WINDOW_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "open", "ok").inc()
        if any(a.action != "keep" for a in attached):
            log.info("gateway metrics on for %s: %s", upstream, [a.as_json() for a in attached])
        return [a.as_json() for a in attached]

    def close(self, upstream: str) -> list[str]:
        """Remove our http-log plugins of the upstream; the ids removed."""
        try:
            removed = detach_http_log(self.kong, upstream)
        except (ApiError, KongError):
            WINDOW_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "close", "failed").inc()
            raise
        WINDOW_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "close", "ok").inc()
        if removed:
            log.info("gateway metrics off for %s: removed %s", upstream, removed)
        return removed

    def plugins(self, upstream: str) -> list[dict[str, str]]:
        return [
            {"id": str(p["id"]), "service": str((p.get("service") or {}).get("id", ""))}
            for p in managed_plugins(self.kong, upstream)
        ]

    def observe(self, event: ChangeEvent) -> list[str]:
        """The TrafficService observer: warnings for the change's answer, never an error."""
        opening = event.split is not None and event.split != Split.STABLE_ONLY
        CONFIRMED_UPSTREAMS.confirm(event.upstream)  # the change read it from Kong
        try:
            if opening:
                self.open(event.upstream)
            else:
                self.close(event.upstream)
            return []
        except ApiError as exc:
            reason = exc.message
        except KongError as exc:
            reason = from_kong_error(exc).message
        except Exception as exc:  # an observer must never turn a done change into an error
            log.exception("gateway metrics window of %s", event.upstream)
            reason = f"unexpected error: {exc}"
        path = f"/v1/upstreams/{event.upstream}/gateway-metrics"
        if opening:
            warning = (
                f"gateway metrics: http-log could not be attached for {event.upstream} "
                f"({reason}); the sidecar-gateway Kayenta metrics get no data for this "
                f"canary – fix it and POST {path}"
            )
        else:
            warning = (
                f"gateway metrics: http-log could not be removed for {event.upstream} "
                f"({reason}); Kong keeps posting request logs to the sidecar – DELETE {path}"
            )
        log.warning("%s", warning)
        return [warning]
