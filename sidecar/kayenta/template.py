"""Kayenta's Prometheus query building: template expansion and the ``PromQL:`` escape hatch.

Sources: kayenta-core ``canary/providers/metrics/QueryConfigUtils.java`` (commons-text
``StringSubstitutor`` with ``setEnableUndefinedVariableException(true)``; bindings are the scope's
non-empty base attributes, then the query config's, then all ``extendedScopeParams``; Orca's
``$\\{`` escaping is undone first) and kayenta-prometheus ``PrometheusMetricsService.buildQuery``
(an expansion starting with ``PromQL:`` is sent verbatim).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROMETHEUS_BASE_ATTRIBUTES = ("project", "resourceType", "scope", "location")
PROMQL_PREFIX = "PromQL:"


class TemplateError(ValueError):
    """Kayenta's "Problem evaluating custom filter template" (unbound variable, bad syntax)."""


@dataclass(frozen=True)
class CanaryScope:
    """One side of a canary execution request (``PrometheusCanaryScope``)."""

    scope: str
    start: str
    end: str
    step: int = 60
    location: str = ""
    extended_scope_params: Mapping[str, str] = field(default_factory=dict)


def substitute(template: str, bindings: Mapping[str, str], _seen: tuple[str, ...] = ()) -> str:
    """``StringSubstitutor.replace``: ``${x}``, ``${x:-default}``, ``$${x}`` escapes, recursive
    values, undefined variables raise."""
    out: list[str] = []
    i = 0
    while i < len(template):
        if template.startswith("$${", i):
            out.append("${")
            i += 3
            continue
        if template.startswith("${", i):
            end = template.find("}", i + 2)
            if end < 0:
                out.append(template[i:])
                break
            expr = template[i + 2 : end]
            name, has_default, default = expr.partition(":-")
            if name in bindings:
                if name in _seen:
                    raise TemplateError(f"cyclic variable reference: {name}")
                out.append(substitute(bindings[name], bindings, (*_seen, name)))
            elif has_default:
                out.append(default)
            else:
                raise TemplateError(
                    f"Problem evaluating custom filter template: {template} "
                    f"(cannot resolve variable '{name}')"
                )
            i = end + 1
            continue
        out.append(template[i])
        i += 1
    return "".join(out)


def template_bindings(scope: CanaryScope, query: Mapping[str, Any]) -> dict[str, str]:
    values = {"scope": scope.scope, "location": scope.location}
    bindings = {k: v for k in PROMETHEUS_BASE_ATTRIBUTES if (v := values.get(k))}
    if query.get("resourceType"):
        bindings["resourceType"] = query["resourceType"]
    bindings.update(scope.extended_scope_params)
    return bindings


def build_query(
    query: Mapping[str, Any], templates: Mapping[str, str] | None, scope: CanaryScope
) -> str:
    """The PromQL Kayenta sends to ``/api/v1/query_range`` for this metric and scope."""
    if query.get("customFilter"):
        raise TemplateError("customFilter is deprecated, use customInlineTemplate")
    template = query.get("customInlineTemplate") or ""
    if not template and query.get("customFilterTemplate"):
        name = query["customFilterTemplate"]
        if not templates or name not in templates:
            raise TemplateError(f"Custom filter template '{name}' was not found.")
        template = templates[name]
    template = template.replace("$\\{", "${")
    expanded = substitute(template, template_bindings(scope, query)) if template else ""
    if expanded.startswith(PROMQL_PREFIX):
        return expanded[len(PROMQL_PREFIX) :]
    if not expanded:
        raise TemplateError("Either a resource type or a custom filter is required.")
    matchers = [*expanded.split(","), *query.get("labelBindings", [])]
    group_by = query.get("groupByFields") or []
    suffix = f" by ({','.join(group_by)})" if group_by else ""
    return f"avg({query['metricName']}{{{','.join(matchers)}}}){suffix}"


def required_variables(template: str) -> set[str]:
    """Variables without defaults a request must bind (for docs and config checks)."""
    names: set[str] = set()
    i = 0
    while (start := template.find("${", i)) >= 0:
        if start > 0 and template[start - 1] == "$":
            i = start + 2
            continue
        end = template.find("}", start)
        if end < 0:
            break
        name, has_default, _ = template[start + 2 : end].partition(":-")
        if not has_default:
            names.add(name)
        i = end + 1
    return names
