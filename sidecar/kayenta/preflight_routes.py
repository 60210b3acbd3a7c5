"""``preflight --routes``: can the per-route Kayenta configs judge these routes? Pure decisions.

For each route the user lists (by name or id) three things must hold, or a per-route analysis
judges nothing (NODATA) or the wrong requests:

* it is a route of a service whose ``host`` is the upstream (the canary shifts that upstream's
  targets; a route of another service never reaches them);
* Kong records its requests: the Prometheus plugin that runs for (service, route) has the
  options the per-route configs need (``preflight.coverage``: Kong's plugin precedence);
* Kong's metrics show requests on it, when a Prometheus is given: a route nobody calls gives
  a per-route analysis nothing to compare.

The label value to pass as ``extendedScopeParams.route`` is the route's *name*, or its id when
it has none: Kong's exporter sets ``route_name = message.route.name or message.route.id`` and
``service_name = message.service.name or message.service.host``
(``kong/plugins/prometheus/exporter.lua``, 2.8.5, 3.4.2 and 3.9.3 alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sidecar.kayenta.library import PrometheusNeeds
from sidecar.kayenta.preflight import Entity, Requirement, coverage, label


def parse_routes(raw: Sequence[str]) -> tuple[str, ...]:
    """``--routes a,b --routes c`` -> ("a", "b", "c"): blanks dropped, order kept, once each.
    ValueError when nothing is left."""
    out: list[str] = []
    for item in raw:
        for part in item.split(","):
            name = part.strip()
            if name and name not in out:
                out.append(name)
    if not out:
        raise ValueError("--routes: name at least one route (name or id, comma-separated)")
    return tuple(out)


def route_label(route: Entity) -> str:
    """The ``route`` label value Kong's Prometheus plugin writes for this route."""
    return str(route.get("name") or route["id"])


def service_label(service: Entity) -> str:
    """The ``service`` label value Kong's Prometheus plugin writes for this service."""
    return str(service.get("name") or service.get("host"))


def matches(route: Entity, wanted: str) -> bool:
    return wanted in (route.get("name"), str(route.get("id")))


def _promql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def traffic_query(requests_metric: str, service: Entity, route: Entity, window: str) -> str:
    """Requests Kong recorded for (service, route) over ``window``, summed over every other
    label (instance, code, workspace, consumer ...); no series at all reads as no answer."""
    selector = (
        f"service={_promql_string(service_label(service))},"
        f"route={_promql_string(route_label(route))}"
    )
    return f"sum(increase({requests_metric}{{{selector}}}[{window}]))"


def requests_metric(needs: Mapping[str, PrometheusNeeds], requirement: Requirement) -> str | None:
    """The request counter of the checked configs spelt for this Kong."""
    return next(
        (
            needs[c].requests
            for c in requirement.configs
            if c in needs and needs[c].kong == requirement.family and needs[c].requests
        ),
        None,
    )


@dataclass(frozen=True)
class RouteFinding:
    """One listed route: where it is, what records it, and whether it carries traffic."""

    wanted: str
    route: Entity | None = None
    service: Entity | None = None
    plugin: Entity | None = None
    scope: str | None = None
    missing: tuple[str, ...] = ()
    elsewhere: Entity | None = None  # the service it belongs to when not the upstream's
    requests: float | None = None  # None: not checked (no Prometheus given) or not found
    window: str | None = None

    @property
    def problems(self) -> list[str]:
        if self.route is None or self.service is None:
            if self.elsewhere is not None:
                return [
                    f"is a route of service {label(self.elsewhere)} (host "
                    f"{self.elsewhere.get('host')!r}), which does not proxy to the upstream"
                ]
            return ["no route with this name or id on the upstream's services"]
        out = []
        if self.plugin is None:
            out.append("no prometheus plugin runs for its requests")
        elif self.missing:
            out.append(
                f"prometheus plugin {self.plugin['id']} ({self.scope}) lacks "
                + ", ".join(self.missing)
            )
        if self.requests is not None and self.requests <= 0:
            why = " (Kong records none without status_code_metrics)" if (
                "status_code_metrics" in self.missing or self.plugin is None
            ) else ""  # fmt: skip
            out.append(f"no requests in Kong's metrics over the last {self.window}{why}")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.wanted,
            "ok": self.ok,
            "id": self.route.get("id") if self.route else None,
            "service": label(self.service) if self.service else None,
            "extended_scope_params_route": route_label(self.route) if self.route else None,
            "plugin": {"id": self.plugin["id"], "scope": self.scope} if self.plugin else None,
            "missing": list(self.missing),
            "requests": self.requests,
            "window": self.window,
            "problems": self.problems,
        }


def find_routes(
    wanted: Sequence[str],
    upstream: str,
    services: Sequence[Entity],
    routes: Mapping[str, Sequence[Entity]],
    requirement: Requirement,
    plugins: Sequence[Entity],
) -> list[RouteFinding]:
    """``routes``: service id -> its routes, for the services whose host is ``upstream``."""
    mine = [s for s in services if s.get("host") == upstream and s.get("id")]
    out = []
    for name in wanted:
        found = next(
            (
                (service, route)
                for service in mine
                for route in routes.get(str(service["id"]), ())
                if matches(route, name)
            ),
            None,
        )
        if found is None:
            out.append(RouteFinding(name))
            continue
        service, route = found
        plugin, scope, missing = coverage(
            requirement, plugins, str(service["id"]), str(route["id"])
        )
        out.append(RouteFinding(name, route, service, plugin, scope, missing))
    return out


def elsewhere(
    finding: RouteFinding, route: Entity | None, services: Sequence[Entity]
) -> RouteFinding:
    """A route not on the upstream's services, looked up on its own: name its service."""
    if route is None or finding.route is not None:
        return finding
    service_id = (route.get("service") or {}).get("id")
    owner = next((s for s in services if str(s.get("id")) == str(service_id)), None)
    if owner is None:
        return finding
    return RouteFinding(finding.wanted, elsewhere=owner)


def with_traffic(finding: RouteFinding, requests: float, window: str) -> RouteFinding:
    return replace(finding, requests=requests, window=window)
