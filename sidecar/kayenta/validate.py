"""Check a canary config more strictly than Kayenta does, naming the JSON path of each problem.

Kayenta deserialises with ``FAIL_ON_UNKNOWN_PROPERTIES`` off and maps bad enum values to defaults
(``MapUtils``/``MetricDirection.parse``), so a typo silently changes the verdict. The JSON Schema
(``canary-config.schema.json``) catches types, unknown keys and enums; the checks below catch what
a schema cannot express: duplicate metric names, group weights, template references.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from sidecar.kayenta.template import required_variables


@dataclass(frozen=True, order=True)
class ConfigError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@cache
def schema() -> dict[str, Any]:
    text = resources.files("sidecar.kayenta").joinpath("canary-config.schema.json").read_text()
    return json.loads(text)


def _schema_errors(config: Any) -> list[ConfigError]:
    validator = Draft202012Validator(schema())
    return [ConfigError(e.json_path, e.message) for e in validator.iter_errors(config)]


def _template_of(metric: Mapping[str, Any], templates: Mapping[str, str]) -> str | None:
    query = metric.get("query") or {}
    return query.get("customInlineTemplate") or templates.get(query.get("customFilterTemplate", ""))


def _semantic_errors(config: Mapping[str, Any]) -> list[ConfigError]:
    errors: list[ConfigError] = []
    metrics = config.get("metrics") or []
    templates = config.get("templates") or {}
    weights: Mapping[str, float] = (config.get("classifier") or {}).get("groupWeights") or {}
    seen: dict[str, int] = {}
    used_groups: set[str] = set()
    for i, metric in enumerate(metrics):
        base = f"$.metrics[{i}]"
        name = metric.get("name")
        if name in seen:
            errors.append(ConfigError(f"{base}.name", f"duplicate metric name {name!r}"))
        seen.setdefault(name, i)
        for j, group in enumerate(metric.get("groups") or []):
            used_groups.add(group)
            if group not in weights:
                errors.append(
                    ConfigError(f"{base}.groups[{j}]", f"group {group!r} has no groupWeights entry")
                )
        query = metric.get("query") or {}
        ref = query.get("customFilterTemplate")
        if ref and ref not in templates:
            errors.append(
                ConfigError(f"{base}.query.customFilterTemplate", f"no template named {ref!r}")
            )
        template = _template_of(metric, templates)
        if not template:
            errors.append(
                ConfigError(f"{base}.query", "needs customInlineTemplate or customFilterTemplate")
            )
        elif "scope" not in required_variables(template.replace("$\\{", "${")):
            errors.append(
                ConfigError(
                    f"{base}.query.customInlineTemplate",
                    "template never uses ${scope}: canary and baseline would run the same query",
                )
            )
        canary = (metric.get("analysisConfigurations") or {}).get("canary") or {}
        if canary.get("mustHaveData") and canary.get("nanStrategy") == "replace":
            errors.append(
                ConfigError(
                    f"{base}.analysisConfigurations.canary.mustHaveData",
                    "mustHaveData has no effect with nanStrategy 'replace'",
                )
            )
    for group in weights:
        if group not in used_groups:
            errors.append(
                ConfigError(f"$.classifier.groupWeights.{group}", "weighted group has no metric")
            )
    if weights and all(isinstance(w, int | float) for w in weights.values()):
        total = sum(weights.values())
        if abs(total - 100) > 1e-9:
            errors.append(
                ConfigError("$.classifier.groupWeights", f"weights sum to {total:g}, not 100")
            )
    thresholds = (config.get("classifier") or {}).get("scoreThresholds") or {}
    p, m = thresholds.get("pass"), thresholds.get("marginal")
    if isinstance(p, int | float) and isinstance(m, int | float) and m > p:
        errors.append(ConfigError("$.classifier.scoreThresholds.marginal", "marginal > pass"))
    return errors


def validate_config(config: Any) -> list[ConfigError]:
    """All problems found; empty means the config is accepted."""
    errors = _schema_errors(config)
    if errors or not isinstance(config, Mapping):
        return sorted(errors)
    return sorted(_semantic_errors(config))
