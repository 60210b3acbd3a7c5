"""Does Kong's Prometheus plugin record what the shipped Kayenta configs query? Pure decisions.

In Kong 3.x the plugin's status-code and latency metrics are off unless ``status_code_metrics``
and ``latency_metrics`` are on (``kong/plugins/prometheus/schema.lua``, both default false), so
a 5xx or P99 config finds no series and Kayenta judges nothing. Kong 2.8 always records them
and has no such options. The options each config needs come from the library definition
(``kong_prometheus`` of its family, via ``prometheus_needs``).

Which plugin instance records a request is Kong's plugin precedence for that request (the
handler reads *its own* ``conf``, ``kong/plugins/prometheus/handler.lua``): without consumer
scoping, route+service, then route, then service, then global; disabled plugins do not run.
So coverage is decided per route of each service whose ``host`` is the upstream. Routes are
only needed when a route-scoped Prometheus plugin exists; otherwise every route of a service
gets the service's (or the global) plugin and the service alone decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sidecar.core.tags import MANAGED_TAG
from sidecar.kayenta.library import PrometheusNeeds
from sidecar.kong.models import Flavour

PLUGIN = "prometheus"
Entity = Mapping[str, Any]


def _ref(entity: Entity, key: str) -> str | None:
    value = entity.get(key)
    return str(value["id"]) if isinstance(value, Mapping) and value.get("id") else None


def metric_family(flavour: Flavour) -> str:
    """The family spelling a Kong speaks: Konnect data planes are 3.x."""
    return "2.x" if flavour is Flavour.KONG_2 else "3.x"


@dataclass(frozen=True)
class Requirement:
    """What the checked configs need from the plugin on this Kong."""

    family: str  # "2.x" | "3.x"
    configs: tuple[str, ...]
    options: Mapping[str, tuple[str, ...]]  # option -> "config: metric" it feeds
    mismatched: tuple[str, ...] = ()  # configs spelt for the other Kong major

    @classmethod
    def build(
        cls,
        needs: Mapping[str, PrometheusNeeds],
        flavour: Flavour,
        configs: Sequence[str] = (),
        *,
        per_route: bool = False,
    ) -> Requirement:
        """All Kong configs of this Kong's family (``per_route``: only the per-route ones), or
        exactly ``configs`` (ValueError when one is unknown; configs that read no Kong metrics
        need nothing)."""
        family = metric_family(flavour)
        unknown = [c for c in configs if c not in needs]
        if unknown:
            raise ValueError(f"no Kong Prometheus config named {', '.join(unknown)}")
        chosen = list(configs) or [
            n
            for n, need in needs.items()
            if need.kong == family and (need.per_route or not per_route)
        ]
        options: dict[str, list[str]] = {}
        for name in chosen:
            for option, metrics in needs[name].options.items():
                options.setdefault(option, []).extend(f"{name}: {m}" for m in metrics)
        mismatched = tuple(c for c in chosen if needs[c].kong != family)
        return cls(family, tuple(chosen), {k: tuple(v) for k, v in options.items()}, mismatched)


@dataclass(frozen=True)
class Gap:
    """Requests of ``service`` via ``route`` (None: any route) whose metrics go unrecorded:
    no plugin runs for them, or ``plugin`` runs without ``missing`` options."""

    service: Entity
    route: Entity | None
    plugin: Entity | None
    scope: str | None  # "route+service" | "route" | "service" | "global"
    missing: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": _brief(self.service),
            "route": _brief(self.route) if self.route else None,
            "plugin": {"id": self.plugin["id"], "scope": self.scope} if self.plugin else None,
            "missing": list(self.missing),
        }


def _brief(entity: Entity) -> dict[str, Any]:
    return {"id": entity.get("id"), "name": entity.get("name")}


def label(entity: Entity) -> str:
    return str(entity.get("name") or entity.get("id"))


@dataclass
class Report:
    upstream: str
    requirement: Requirement
    services: list[Entity]
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.services) and not self.gaps and not self.requirement.mismatched

    def to_dict(self) -> dict[str, Any]:
        req = self.requirement
        return {
            "upstream": self.upstream,
            "ok": self.ok,
            "family": req.family,
            "configs": list(req.configs),
            "mismatched_configs": list(req.mismatched),
            "required_options": {k: list(v) for k, v in req.options.items()},
            "services": [_brief(s) for s in self.services],
            "gaps": [g.to_dict() for g in self.gaps],
            "notes": self.notes,
        }


def _effective(
    plugins: Sequence[Entity], service_id: str, route_id: str | None
) -> tuple[Entity | None, str | None]:
    """The plugin instance Kong runs for such a request, and its scope."""
    levels: list[tuple[str, str | None, str | None]] = []
    if route_id is not None:
        levels += [("route+service", route_id, service_id), ("route", route_id, None)]
    levels += [("service", None, service_id), ("global", None, None)]
    for scope, route, service in levels:
        for plugin in plugins:
            if _ref(plugin, "route") == route and _ref(plugin, "service") == service:
                return plugin, scope
    return None, None


def coverage(
    requirement: Requirement, plugins: Sequence[Entity], service_id: str, route_id: str | None
) -> tuple[Entity | None, str | None, tuple[str, ...]]:
    """The Prometheus plugin Kong runs for requests of this service (via this route), its
    scope, and the required options it lacks (all of them when none runs)."""
    ours = [p for p in plugins if p.get("name") == PLUGIN]
    running = [p for p in ours if p.get("enabled", True) and _ref(p, "consumer") is None]
    plugin, scope = _effective(running, service_id, route_id)
    missing = tuple(o for o in requirement.options if plugin is None or not _config(plugin).get(o))
    return plugin, scope, missing


def analyse(
    upstream: str,
    requirement: Requirement,
    services: Sequence[Entity],
    plugins: Sequence[Entity],
    routes: Mapping[str, Sequence[Entity]] | None = None,
) -> Report:
    """``routes``: service id -> its routes, for services where route-scoped plugins exist."""
    mine = [s for s in services if s.get("host") == upstream and s.get("id")]
    report = Report(upstream, requirement, mine)
    ours = [p for p in plugins if p.get("name") == PLUGIN]
    if requirement.family == "2.x":
        report.notes.append(
            "Kong 2.x: the Prometheus plugin always records status codes and latencies "
            "(it has no status_code_metrics/latency_metrics options); only coverage is checked"
        )
    for name in requirement.mismatched:
        other = "2.x" if requirement.family == "3.x" else "3.x"
        report.notes.append(
            f"{name} queries Kong {other} metric names; this Kong is {requirement.family}, "
            "so its queries find no series"
        )
    if not mine:
        report.notes.append(f"no Kong service has host {upstream!r}: nothing proxies to it")
    for service in mine:
        service_routes = list((routes or {}).get(str(service["id"]), ())) or [None]
        for route in service_routes:
            route_id = str(route["id"]) if route else None
            plugin, scope, missing = coverage(requirement, plugins, str(service["id"]), route_id)
            if plugin is None or missing:
                report.gaps.append(Gap(service, route, plugin, scope, missing))
        report.notes += _side_notes(ours, service, routes)
    return report


def _config(plugin: Entity) -> Mapping[str, Any]:
    config = plugin.get("config")
    return config if isinstance(config, Mapping) else {}


def _side_notes(
    plugins: Sequence[Entity], service: Entity, routes: Mapping[str, Sequence[Entity]] | None
) -> list[str]:
    route_ids = {str(r["id"]) for r in (routes or {}).get(str(service["id"]), ())}
    notes = []
    for plugin in plugins:
        on_service = _ref(plugin, "service") in (None, str(service["id"]))
        on_route = _ref(plugin, "route") is None or _ref(plugin, "route") in route_ids
        if not (on_service and on_route):
            continue
        if not plugin.get("enabled", True):
            notes.append(f"prometheus plugin {plugin['id']} is disabled: it records nothing")
        elif _ref(plugin, "consumer") is not None:
            notes.append(
                f"prometheus plugin {plugin['id']} is scoped to consumer "
                f"{_ref(plugin, 'consumer')}: that consumer's requests follow its config"
            )
    return notes


@dataclass(frozen=True)
class Fix:
    """One Admin API write: turn ``options`` on in an existing plugin (enabling it if it was
    disabled), or create a service-scoped plugin with them."""

    action: str  # "update" | "create"
    plugin: Entity | None
    service: Entity
    scope: str
    options: tuple[str, ...]

    def describe(self) -> str:
        opts = ", ".join(self.options) or "no options (Kong 2.x)"
        if self.action == "create":
            return f"create a prometheus plugin on service {label(self.service)} with {opts}"
        assert self.plugin is not None
        scope = "global, so every service" if self.scope == "global" else self.scope
        verb = "enable" if not self.plugin.get("enabled", True) else "update"
        return f"{verb} prometheus plugin {self.plugin['id']} ({scope}): {opts} on"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "plugin": self.plugin["id"] if self.plugin else None,
            "service": _brief(self.service),
            "scope": self.scope,
            "options": list(self.options),
        }


def plan_fixes(report: Report, plugins: Sequence[Entity]) -> list[Fix]:
    """The fewest writes that close every gap: the plugin that runs gets the options it lacks;
    a service nothing runs for gets its own plugin with all of them (its disabled one
    re-enabled, since Kong allows one plugin of a name per scope)."""
    fixes: dict[str, Fix] = {}
    wanted: dict[str, list[str]] = {}
    everything = list(report.requirement.options)
    for gap in report.gaps:
        if gap.plugin is not None:
            key = str(gap.plugin["id"])
            fixes.setdefault(key, Fix("update", gap.plugin, gap.service, gap.scope or "", ()))
            options = gap.missing
        else:
            service_id = str(gap.service["id"])
            disabled = next((p for p in plugins if _disabled_on(p, service_id)), None)
            if disabled is not None:
                key = str(disabled["id"])
                fixes.setdefault(key, Fix("update", disabled, gap.service, "service", ()))
            else:
                key = f"service:{service_id}"
                fixes.setdefault(key, Fix("create", None, gap.service, "service", ()))
            options = tuple(everything)
        wanted.setdefault(key, [])
        wanted[key] += [o for o in options if o not in wanted[key]]
    return [
        Fix(f.action, f.plugin, f.service, f.scope, tuple(o for o in everything if o in wanted[k]))
        for k, f in fixes.items()
    ]


def _disabled_on(plugin: Entity, service_id: str) -> bool:
    return (
        plugin.get("name") == PLUGIN
        and not plugin.get("enabled", True)
        and _ref(plugin, "service") == service_id
        and _ref(plugin, "route") is None
        and _ref(plugin, "consumer") is None
    )


def plugin_body(options: Sequence[str]) -> dict[str, Any]:
    """A new service-scoped plugin (POST under the service), tagged as ours."""
    body: dict[str, Any] = {"name": PLUGIN, "enabled": True, "tags": [MANAGED_TAG]}
    if options:
        body["config"] = {o: True for o in options}
    return body


def split_warnings(report: Report) -> list[str]:
    """One line per gap for ``GET …/split``; nothing when no service proxies to the upstream
    (then no Kong metric could exist anyway, and the split view has its own warnings). Each
    line names the configs that lack data: metric names such as ``gateway_5xx_ratio`` are
    shared with ``kong-canary-sidecar-gateway``, which reads the sidecar's own series and
    gets its data without Kong's Prometheus plugin (issue 15)."""
    if not report.services:
        return []
    fix = f"kong-canary preflight --upstream {report.upstream} --fix"
    out = []
    for gap in report.gaps:
        where = f"service {label(gap.service)}"
        if gap.route is not None:
            where += f", route {label(gap.route)}"
        if gap.plugin is None:
            what = "no Prometheus plugin runs"
        else:
            what = f"prometheus plugin {gap.plugin['id']} ({gap.scope}) lacks " + ", ".join(
                gap.missing
            )
        fed = [m.split(": ", 1) for o in gap.missing for m in report.requirement.options.get(o, ())]
        judged = ""
        if fed:  # name the configs that lack data: others (the sidecar's own) have theirs
            configs, metrics = sorted({c for c, _ in fed}), sorted({m for _, m in fed})
            judged = (
                f": Kayenta configs {', '.join(configs)} get no {', '.join(metrics)} "
                "(configs on the sidecar's gateway metrics do not need this plugin)"
            )
        out.append(f"Kong metrics for {where}: {what}{judged} (run: {fix})")
    return out
