"""Open windows that someone else removed: found on the sweeper's schedule and restored.

Another client's ``DELETE /plugins/{id}`` (or a PATCH to ``enabled: false``) stops the
canary's gateway metrics silently: Kong just stops posting. So every sweep (``LeaseSweeper``,
every ``lease_check_interval``) looks at each upstream that carries baseline or canary traffic
and restores its window when a service lacks our enabled http-log; ``GET …/split`` checks the
same (cached ``ttl`` seconds) and warns while detached. The gauge
``kong_canary_gateway_window_attached{upstream}`` says what the last check found: 1 attached,
0 detached (or closed: a stable-only upstream has no window). It is ``mostrecent`` in
gunicorn's multiprocess mode (``sidecar/metrics.py``): the last worker that looked knows.

The restore takes the upstream's locks (``TrafficService.exclusive``, as the by-hand endpoint
does) and re-reads the split under them, so it never re-opens a window a concurrent rollback
has just closed. A restored window needs Kong's interval to run again; requests in between
are not counted, which the audit line and the warning say.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sidecar.core.lease import read_marks
from sidecar.core.refusals import Refusal
from sidecar.errors import ApiError
from sidecar.gateway.kong_plugins import KongPlugins
from sidecar.gateway.plugin import PLUGIN_NAME, is_managed, services_of
from sidecar.gateway.window import WINDOW_ATTACHED, GatewayWindow, carries_canary
from sidecar.kong.errors import KongError
from sidecar.metrics import CONFIRMED_UPSTREAMS

log = logging.getLogger("kong_canary.gateway")
audit = logging.getLogger("kong_canary.audit")


def detached_services(
    upstream: str, services: Sequence[Mapping[str, Any]], plugins: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Ids of the upstream's services without an enabled http-log of ours (pure)."""
    running = {
        str((p.get("service") or {}).get("id"))
        for p in plugins
        if p.get("name") == PLUGIN_NAME and p.get("enabled", True) and is_managed(p, upstream)
    }
    return [s for s in services_of(services, upstream) if s not in running]


class WindowCheck:
    def __init__(
        self,
        window: GatewayWindow,
        traffic: Any,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.traffic = traffic
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def detached(self, upstream: str) -> list[str]:
        """Services of an upstream with canary traffic lacking our http-log ([] when the
        upstream is stable-only: no window is due); sets the gauge."""
        if not carries_canary(self.traffic.read(upstream).split()):
            return []
        plugins = KongPlugins.of(self.window.kong)
        missing = detached_services(upstream, plugins.services(), plugins.plugins())
        label = CONFIRMED_UPSTREAMS.confirm(upstream)
        WINDOW_ATTACHED.labels(label).set(0 if missing else 1)
        return missing

    def warnings(self, upstream: str) -> list[str]:
        """The ``GET …/split`` hook: never raises, cached ``ttl`` seconds per upstream."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(upstream)
        if hit is not None and 0 <= now - hit[0] < self.ttl:
            return list(hit[1])
        try:
            missing = self.detached(upstream)
        except (ApiError, KongError) as exc:
            log.debug("gateway window of %s not checked: %s", upstream, exc)
            return []
        out = []
        if missing:
            out.append(
                f"gateway metrics: the http-log window of {upstream} is detached from Kong "
                f"service(s) {', '.join(missing)} (removed or disabled by someone else): their "
                "requests are not counted until the next sweep restores it (or POST "
                f"/v1/upstreams/{upstream}/gateway-metrics)"
            )
        with self._lock:
            self._cache[upstream] = (now, out)
        return out

    def sweep(self) -> list[str]:
        """Restore every detached window of an upstream with canary traffic; their names."""
        restored = []
        for entity in self.traffic.managed_upstreams():
            if read_marks(entity.tags).lease_until is None:
                continue  # a lease is written before traffic leaves stable: none, no canary
            try:
                if self.detached(entity.name) and self._restore(entity.name):
                    restored.append(entity.name)
            except (ApiError, Refusal, KongError) as exc:
                log.warning("gateway window of %s not restored: %s", entity.name, exc)
        return restored

    def _restore(self, upstream: str) -> bool:
        with self.traffic.exclusive(upstream):
            missing = self.detached(upstream)  # again, under the locks
            if not missing:
                return False
            plugins = self.window.open(upstream)
        WINDOW_ATTACHED.labels(CONFIRMED_UPSTREAMS.confirm(upstream)).set(1)
        with self._lock:
            self._cache.pop(upstream, None)
        entry = {"event": "gateway_window_restored", "token": None, "upstream": upstream,
                 "detached_services": missing, "plugins": plugins}  # fmt: skip
        audit.info(json.dumps(entry, sort_keys=True))
        log.warning(
            "gateway metrics window of %s was detached from %s: restored", upstream, missing
        )
        return True
