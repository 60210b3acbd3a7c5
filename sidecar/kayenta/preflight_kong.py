"""The preflight against a live Kong: read, fix, and a cached check for ``GET …/split``.

Reads are ``GET /services`` and ``GET /plugins`` (every scope at once: a plugin's ``service``,
``route`` and ``consumer`` say where it applies), plus ``GET /services/{s}/routes`` only when a
route-scoped Prometheus plugin exists. Writes: an existing plugin gets the missing options by
PATCH (Kong merges nested records on PATCH); Konnect has no PATCH, so there the whole plugin is
PUT back with its own scope. A service nothing covers gets a service-scoped plugin.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from sidecar.gateway.kong_plugins import KongPlugins
from sidecar.kayenta.library import PrometheusNeeds, find_library_dir, load_library
from sidecar.kayenta.library import prometheus_needs as needs_of
from sidecar.kayenta.preflight import (
    PLUGIN,
    Fix,
    Report,
    Requirement,
    analyse,
    plugin_body,
    split_warnings,
)
from sidecar.kayenta.preflight_routes import (
    RouteFinding,
    elsewhere,
    find_routes,
    traffic_query,
    with_traffic,
)
from sidecar.kayenta.prometheus import query_sum
from sidecar.kong import pages, wire
from sidecar.kong.client import KongAdmin
from sidecar.kong.errors import KongError, KongNotFound, KongReadOnly
from sidecar.kong.models import Flavour
from sidecar.kong.parse import Call

log = logging.getLogger("kong_canary.preflight")
KONNECT_PUT_FIELDS = ("name", "config", "enabled", "protocols", "tags", "service", "route",
                      "consumer", "instance_name")  # fmt: skip


class PrometheusAdmin:
    """What the preflight reads and writes, over the ``KongAdmin``'s own http client."""

    def __init__(self, kong: KongAdmin) -> None:
        self._kong = kong
        self._plugins = KongPlugins.of(kong)

    def services(self) -> list[dict[str, Any]]:
        return self._plugins.services()

    def plugins(self) -> list[dict[str, Any]]:
        return self._plugins.plugins()

    def routes(self, service_id: str) -> list[dict[str, Any]]:
        path = f"/services/{quote(service_id, safe='')}/routes"
        return pages.collect(partial(wire.call, self._kong._http, "GET", path), Call("GET", path))[
            0
        ]

    def route(self, key: str) -> dict[str, Any] | None:
        """``GET /routes/{name or id}``, None when Kong has no such route."""
        try:
            found = wire.call(self._kong._http, "GET", f"/routes/{quote(key, safe='')}")
        except KongNotFound:
            return None
        return found if isinstance(found, dict) else None

    def turn_on(self, plugin: Mapping[str, Any], options: Sequence[str]) -> dict[str, Any]:
        path = f"/plugins/{quote(str(plugin['id']), safe='')}"
        config = {o: True for o in options}
        if self._kong.flavour is Flavour.KONNECT:
            body = {k: plugin.get(k) for k in KONNECT_PUT_FIELDS if k in plugin}
            body.update(enabled=True, config={**(plugin.get("config") or {}), **config})
            method = "PUT"
        else:
            body = {"enabled": True, **({"config": config} if config else {})}
            method = "PATCH"
        if not self._kong.info().writable:
            raise KongReadOnly(wire.READ_ONLY_MESSAGE, method=method, path=path)
        return wire.call(self._kong._http, method, path, body=body)

    def create(self, service_id: str, options: Sequence[str]) -> dict[str, Any]:
        return self._plugins.create(service_id, plugin_body(options))


def check(
    kong: KongAdmin, upstream: str, requirement: Requirement, *, verify_upstream: bool = True
) -> tuple[Report, list[dict[str, Any]]]:
    """The report and the plugins it was made from. KongNotFound when there is no upstream
    (``verify_upstream=False``: the caller has just read it)."""
    if verify_upstream:
        kong.upstream(upstream)
    admin = PrometheusAdmin(kong)
    services = admin.services()
    plugins = admin.plugins()
    routes = None
    if any(p.get("name") == PLUGIN and p.get("route") for p in plugins):
        mine = [s for s in services if s.get("host") == upstream and s.get("id")]
        routes = {str(s["id"]): admin.routes(str(s["id"])) for s in mine}
    return analyse(upstream, requirement, services, plugins, routes), plugins


def check_routes(
    kong: KongAdmin,
    upstream: str,
    wanted: Sequence[str],
    requirement: Requirement,
    plugins: Sequence[Mapping[str, Any]],
) -> list[RouteFinding]:
    """Each listed route on the upstream's services (``GET /services/{s}/routes``), with the
    plugin that records it; one not found there is looked up by itself to name its service."""
    admin = PrometheusAdmin(kong)
    services = admin.services()
    mine = [s for s in services if s.get("host") == upstream and s.get("id")]
    routes = {str(s["id"]): admin.routes(str(s["id"])) for s in mine}
    findings = find_routes(wanted, upstream, services, routes, requirement, plugins)
    return [
        elsewhere(f, admin.route(f.wanted), services) if f.route is None else f for f in findings
    ]


def route_traffic(
    prometheus: httpx.Client,
    findings: Sequence[RouteFinding],
    metric: str,
    window: str,
) -> list[RouteFinding]:
    """Requests Kong's metrics show for each found route over ``window``
    (PrometheusQueryError / httpx errors: the caller cannot check)."""
    out = []
    for finding in findings:
        if finding.route is None or finding.service is None:
            out.append(finding)
            continue
        query = traffic_query(metric, finding.service, finding.route, window)
        out.append(with_traffic(finding, query_sum(prometheus, query), window))
    return out


def apply_fixes(kong: KongAdmin, fixes: Sequence[Fix]) -> None:
    """Make the writes in order; a KongError stops at the failing one (the report after says
    what is still missing)."""
    admin = PrometheusAdmin(kong)
    for fix in fixes:
        if fix.action == "create":
            admin.create(str(fix.service["id"]), fix.options)
        else:
            assert fix.plugin is not None
            admin.turn_on(fix.plugin, fix.options)


def requirement_for(
    kong: KongAdmin,
    configs: Sequence[str] = (),
    needs: Mapping[str, PrometheusNeeds] | None = None,
    *,
    per_route: bool = False,
) -> Requirement:
    return Requirement.build(needs or library_needs(), kong.flavour, configs, per_route=per_route)


def library_needs() -> dict[str, PrometheusNeeds]:
    return needs_of(load_library(find_library_dir()))


class CoverageWarnings:
    """A ``TrafficService.describe`` hook: an upstream's Prometheus coverage warnings, checked
    at most once per ``ttl`` seconds per upstream in this process, so the split view stays one
    Kong round trip most of the time. It never fails the view: a Kong error (an RBAC token
    without ``/plugins`` rights, a missing library) just means no warning."""

    def __init__(
        self,
        kong: KongAdmin,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        needs: Callable[[], Mapping[str, PrometheusNeeds]] = library_needs,
    ) -> None:
        self.kong = kong
        self.ttl = ttl
        self.clock = clock
        self._needs_loader = needs
        self._needs: Mapping[str, PrometheusNeeds] | None = None
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def __call__(self, upstream: str) -> list[str]:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(upstream)
        if hit is not None and 0 <= now - hit[0] < self.ttl:
            return list(hit[1])
        warnings = self._check(upstream)
        with self._lock:
            self._cache[upstream] = (now, warnings)
        return list(warnings)

    def _check(self, upstream: str) -> list[str]:
        try:
            if self._needs is None:
                self._needs = self._needs_loader()
            requirement = requirement_for(self.kong, (), self._needs)
            report, _ = check(self.kong, upstream, requirement, verify_upstream=False)
        except (KongError, OSError, ValueError, KeyError) as exc:
            log.debug("prometheus coverage of %s not checked: %s", upstream, exc)
            return []
        return split_warnings(report)
