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

Opening before traffic moves (``GatewayWindow.prepare``, a ``TrafficService`` preparer): Kong
runs a new plugin only after its workers rebuilt their plugins iterator (up to
``worker_state_update_frequency`` with ``worker_consistency = eventual``, plus the cluster's
``db_update_frequency``: ``sidecar.core.window_live``), and on a real Kong 3.4.2 the first ~40
canary requests of a window opened with the traffic were never counted. So a change that takes
an upstream from stable-only to canary/baseline traffic opens the window first, under the
upstream's locks and before its first weight write, and then has the change wait (``NotYet``:
with the locks released, so a rollback or cancel of the upstream goes first, and planned
again after) until Kong's own bound has passed since the plugins were written
(``gateway_live_wait`` at most). The split's ``wait``
comes after the weights, so it never confirms before the window is live.

When Kong's bound exceeds ``gateway_live_wait`` (a cluster with a long
``db_update_frequency``, or a plugin found written a moment ago by another replica's attempt),
the change is refused with 503 ``window_not_live`` and nothing of it is written: moving with a
warning would lose exactly the first canary requests the window exists to count, and silently
for Kayenta (the canary's first errors never reach the 5xx ratio). The plugins stay attached,
so a retry (Orca retries a 503 webhook, ``details.retry_after`` says when) finds them in place
and written long enough ago, and moves at once. An attach that fails outright (no service, a
foreign http-log, an ingest token not allowed) keeps today's contract: the change moves and
answers a warning, since retrying would not fix it and Kayenta then judges NODATA, visibly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from sidecar.core.split import Split
from sidecar.core.window_live import PluginWritten, live_delay, remaining_wait
from sidecar.errors import ApiError, from_kong_error
from sidecar.gateway.kong_plugins import KongPlugins
from sidecar.gateway.plugin import Attached, attach_plugins, detach_http_log, managed_plugins
from sidecar.kong.errors import KongError
from sidecar.metrics import CONFIRMED_UPSTREAMS
from sidecar.propagation import HYBRID, KONNECT
from sidecar.settings import ApiToken, Settings
from sidecar.traffic import ChangeEvent, NotYet

log = logging.getLogger("kong_canary.gateway")
PLANE_METHODS = (HYBRID, KONNECT)
INGEST_PATH = "/v1/kong-log"

WINDOW_CHANGES = Counter(
    "kong_canary_gateway_window_changes_total",
    "http-log attach (open) and detach (close) on an upstream's Kong services, by result",
    ["upstream", "operation", "result"],
)


# Set by open (1) and close (0), and by the sweeper's check (sidecar.gateway.window_check);
# "mostrecent" in gunicorn's multiprocess mode: the last worker that looked knows.
WINDOW_ATTACHED = Gauge(
    "kong_canary_gateway_window_attached",
    "1 while every Kong service of the upstream runs our http-log (window open), 0 when the "
    "window is closed or the last check found it removed or disabled by someone else",
    ["upstream"],
    multiprocess_mode="mostrecent",
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
        live_wait: float = 20.0,
        keep_lock: Callable[[], None] = lambda: None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        propagation: Any = None,
    ) -> None:
        self.kong = kong
        self.propagation = propagation  # sidecar.propagation.Propagation (hybrid, Konnect)
        self.ingest = ingest
        self.prime = prime
        self.live_wait = live_wait
        self.keep_lock = keep_lock  # renews the upstream's Kong lock while the preparer waits
        self.sleep = sleep
        self.wall_clock = wall_clock
        self._configuration: tuple[dict[str, Any] | None] | None = None
        # The upstream whose window this thread's preparer failed to open: its observer then
        # does not try again (the change's answer already carries the warning).
        self._prepare_failed = threading.local()

    def open(self, upstream: str) -> list[dict[str, str]]:
        """Attach (or confirm) our http-log on the upstream's services; ApiError/KongError."""
        return [a.as_json() for a in self._open(upstream)]

    def _open(self, upstream: str) -> list[Attached]:
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
        WINDOW_ATTACHED.labels(CONFIRMED_UPSTREAMS.label(upstream)).set(1)
        if any(a.action != "keep" for a in attached):
            log.info("gateway metrics on for %s: %s", upstream, [a.as_json() for a in attached])
        return attached

    def kong_configuration(self) -> dict[str, Any] | None:
        """``GET /`` ``configuration``, read once per process (a node's settings do not change
        under it); None when Kong does not show it."""
        if self._configuration is None:
            config = None
            with contextlib.suppress(KongError):
                config = KongPlugins.of(self.kong).configuration()
            self._configuration = (config,)
        return self._configuration[0]

    def prepare(self, event: ChangeEvent) -> list[str]:
        """The TrafficService preparer: a change that starts canary/baseline traffic opens the
        window and waits until Kong runs it; 503 ``window_not_live`` (nothing moved) when that
        would take longer than ``live_wait``. Any other change: nothing to do."""
        if not (carries_canary(event.split) and not carries_canary(event.previous)):
            return []
        CONFIRMED_UPSTREAMS.confirm(event.upstream)
        self._prepare_failed.upstream = None
        delay = live_delay(self.kong_configuration()) if self.live_wait > 0 else 0.0
        planes = self._data_planes() if delay is None else None
        before = planes.before_write(event.upstream) if planes is not None else None
        try:
            attached = self._open(event.upstream)
        except Exception as exc:  # the observer's contract: the change moves, with a warning
            self._prepare_failed.upstream = event.upstream
            return [self._failed(event.upstream, True, exc)]
        if self.live_wait <= 0:
            return []  # gateway_live_wait 0: the operator chose not to wait (first requests
            # after the move may go uncounted, as before issue 15)
        if planes is not None and any(a.action != "keep" for a in attached):
            self._wait_for_data_planes(planes, event.upstream, before)
            return []
        bound = self.live_wait if delay is None else delay
        written = [PluginWritten(a.action != "keep", a.written_at) for a in attached]
        remaining = remaining_wait(written, bound, self.wall_clock())
        if remaining > self.live_wait:
            raise ApiError(
                503,
                "window_not_live",
                f"the gateway metrics window of {event.upstream} runs on every Kong worker "
                f"only {remaining:.0f} s from now (Kong's worker_state_update_frequency and "
                f"db_update_frequency), more than gateway_live_wait ({self.live_wait:g} s); "
                "nothing was moved – retry then",
                details={"retry_after": round(remaining, 1)},
            )
        if remaining > 0:
            raise NotYet(remaining)  # the change waits with the upstream's locks released
        return []

    def _data_planes(self) -> Any:
        """The change's propagation waiter when it looks at data planes' config hashes (a
        hybrid control plane, Konnect): there Kong shows no interval, but each data plane
        rebuilds its plugins iterator when it applies a pushed configuration (``reconfigure``
        in ``kong/runloop/handler.lua``, DB-less), so a new hash on every data plane means the
        window runs there. None otherwise (the interval then decides, or the whole bound)."""
        waiter = self.propagation
        try:
            return waiter if waiter is not None and waiter.method() in PLANE_METHODS else None
        except KongError:
            return None

    def _wait_for_data_planes(self, planes: Any, upstream: str, before: Any) -> None:
        """Look (``Propagation.check``: one look, the push interval counted from ``since``)
        until every data plane runs the configuration with the window, renewing the
        upstream's Kong lock between looks; 503 ``window_not_live`` past ``live_wait``."""
        since = self.wall_clock()
        end = since + self.live_wait
        while True:
            outcome = planes.check(upstream, {}, since=since, before=before)
            left = end - self.wall_clock()
            if outcome.get("confirmed"):
                return
            if left <= 0:
                raise ApiError(
                    503,
                    "window_not_live",
                    f"the gateway metrics window of {upstream} did not reach every data plane "
                    f"within gateway_live_wait ({self.live_wait:g} s): "
                    f"{outcome.get('message')}; nothing was moved – retry",
                    details={"retry_after": self.live_wait},
                )
            self.keep_lock()
            self.sleep(min(0.25, left))

    def close(self, upstream: str) -> list[str]:
        """Remove our http-log plugins of the upstream; the ids removed."""
        try:
            removed = detach_http_log(self.kong, upstream)
        except (ApiError, KongError):
            WINDOW_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "close", "failed").inc()
            raise
        WINDOW_CHANGES.labels(CONFIRMED_UPSTREAMS.label(upstream), "close", "ok").inc()
        WINDOW_ATTACHED.labels(CONFIRMED_UPSTREAMS.label(upstream)).set(0)
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
        opening = carries_canary(event.split)
        CONFIRMED_UPSTREAMS.confirm(event.upstream)  # the change read it from Kong
        failed_before = getattr(self._prepare_failed, "upstream", None) == event.upstream
        self._prepare_failed.upstream = None
        if opening and failed_before:
            return []  # the preparer's warning says it, and what to do
        try:
            if opening:
                self.open(event.upstream)
            else:
                self.close(event.upstream)
            return []
        except Exception as exc:  # an observer must never turn a done change into an error
            return [self._failed(event.upstream, opening, exc)]

    def _failed(self, upstream: str, opening: bool, exc: Exception) -> str:
        if isinstance(exc, ApiError):
            reason = exc.message
        elif isinstance(exc, KongError):
            reason = from_kong_error(exc).message
        else:
            log.exception("gateway metrics window of %s", upstream)
            reason = f"unexpected error: {exc}"
        path = f"/v1/upstreams/{upstream}/gateway-metrics"
        if opening:
            warning = (
                f"gateway metrics: http-log could not be attached for {upstream} "
                f"({reason}); the sidecar-gateway Kayenta metrics get no data for this "
                f"canary – fix it and POST {path}"
            )
        else:
            warning = (
                f"gateway metrics: http-log could not be removed for {upstream} "
                f"({reason}); Kong keeps posting request logs to the sidecar – DELETE {path}"
            )
        log.warning("%s", warning)
        return warning


def carries_canary(split: Split | None) -> bool:
    """Baseline or canary traffic: the window should be open."""
    return split is not None and split != Split.STABLE_ONLY
