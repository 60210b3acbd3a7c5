"""Rule checks for MPT v2 templates, templated-pipeline configs and orca-local webhooks.

Each check returns a list of problems (empty = fine), one line each naming the place and
the rule. Sources of the rules (spinnaker/spinnaker monorepo):
``orca-pipelinetemplate/.../tasks/v2/SaveV2PipelineTemplateTask.java`` (save-time),
``.../graph/v2/transform/V2DefaultVariableAssignmentTransform.java`` (variable types),
``V2PipelineTemplate.java`` (name and variable regexes), ``PreconfiguredWebhookStage.java``
(alias, parameters), ``orca-kayenta`` ``KayentaCanaryContext.kt`` (canary stage),
``orca-core`` ``V2Util.planPipeline`` and ``OptionalStageSupport`` (what a plan refuses, how
``stageEnabled`` is evaluated).

Templates and configs are checked *as Orca receives them*, not as the files spell them:
``spin`` reads a file into Go maps (``spin/util/json_reader.go``, ``sigs.k8s.io/yaml``:
numbers become float64) and writes it back with ``encoding/json``, and Deck does
``JSON.stringify(JSON.parse(...))``; both write ``10.0`` as ``10``, which Front50 stores and
Orca's Jackson reads back as an Integer (``as_sent``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from sidecar.spinnaker.spel import expressions

TEMPLATE_NAME = re.compile(r"^[a-zA-z0-9-&\s]+$")  # sic: Orca's regex has the A-z typo
VARIABLE_NAME = re.compile(r"^[a-zA-Z0-9_]+$")
REFERENCE = re.compile(
    r"^spinnaker://[^.:@/\s]+(:(latest|stable|unstable|experimental|test|canary)|@sha256:[0-9a-f]{64})?$"
)
STAGE_REF = re.compile(r"#stage\(\s*'([^']*)'\s*\)")
TEMPLATE_VAR = re.compile(r"templateVariables(?:\.([A-Za-z0-9_]+)|\['([A-Za-z0-9_]+)'\])")
PARAM_REF = re.compile(r"parameterValues(?:\.([A-Za-z0-9_]+)|\['([A-Za-z0-9_]+)'\])")
RUNTIME_ONLY = re.compile(r"\b(execution|trigger|parameters|parameterValues)\b|#stage|#root")
ISO_DURATION = re.compile(r"^P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+S)?)?$")
NATIVE_STAGES = {
    "deployManifest": ("account", "cloudProvider", "moniker"),
    "deleteManifest": ("account", "cloudProvider", "location", "mode"),
    "scaleManifest": ("account", "cloudProvider", "location"),
    "checkPreconditions": ("preconditions",),
    "kayentaCanary": ("canaryConfig",),
    "wait": ("waitTime",),
    "manualJudgment": (),
    "webhook": ("url",),
    "evaluateVariables": ("variables",),
}
VARIABLE_TYPES = {"object", "string", "int", "float", "bool", "boolean", "list"}
EXCLUDABLE = {"triggers", "parameters", "notifications"}


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk_strings(item, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


# Go's encoding/json and JavaScript print a whole double without ".0" below 1e21; above
# 2**53 (Number.MAX_SAFE_INTEGER) such a number is no longer an exact integer, and Jackson
# would read it as a Long, which no variable type here takes, so the model stops there.
_WHOLE_LIMIT = 2**53


def as_sent(value: Any) -> Any:
    """``value`` after ``spin``/Deck wrote it: every whole float loses its ``.0``."""
    if isinstance(value, Mapping):
        return {k: as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_sent(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < _WHOLE_LIMIT:
        return int(value)
    return value


def type_matches(expected: str, value: Any) -> bool:
    """V2DefaultVariableAssignmentTransform's check, on JSON-decoded Python values."""
    expected = expected.lower()
    if expected == "object":
        return True
    if expected == "int":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected in ("bool", "boolean"):
        return isinstance(value, bool)
    if expected == "list":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "float":
        return isinstance(value, float)  # Jackson reads 1 as Integer: `1` fails, `1.0` passes
    return False


def graph_problems(stages: list[Mapping[str, Any]], where: str) -> list[str]:
    problems = []
    refs = [s.get("refId") for s in stages]
    for ref in refs:
        if not isinstance(ref, str) or not ref:
            problems.append(f"{where}: every stage needs a string refId")
    dupes = sorted({r for r in refs if isinstance(r, str) and refs.count(r) > 1})
    if dupes:
        problems.append(f"{where}: duplicate refIds {dupes}")
    known = set(r for r in refs if isinstance(r, str))
    edges: dict[str, list[str]] = {}
    for stage in stages:
        reqs = stage.get("requisiteStageRefIds") or []
        for req in reqs:
            if req not in known:
                problems.append(
                    f"{where}: stage {stage.get('refId')} requires unknown stage {req!r}"
                )
        edges[str(stage.get("refId"))] = [r for r in reqs if r in known]
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1 or (state.get(nxt) is None and visit(nxt)):
                return True
        state[node] = 2
        return False

    for node in edges:
        if state.get(node) is None and visit(node):
            problems.append(f"{where}: requisiteStageRefIds form a cycle through {node!r}")
            break
    return problems


def kayenta_problems(stage: Mapping[str, Any], where: str, types: Mapping[str, str]) -> list[str]:
    problems = []
    cfg = stage.get("canaryConfig") or {}
    if not (cfg.get("canaryConfigId") or cfg.get("canaryConfigName")):
        problems.append(f"{where}: canaryConfig needs canaryConfigId or canaryConfigName")
    for key in (
        "metricsAccountName",
        "storageAccountName",
        "canaryAnalysisIntervalMins",
        "beginCanaryAnalysisAfterMins",
    ):
        if cfg.get(key) in (None, ""):
            problems.append(f"{where}: canaryConfig.{key} is required")
    scopes = cfg.get("scopes") or []
    if not scopes:
        problems.append(f"{where}: canaryConfig.scopes must not be empty (Orca rejects it)")
    for i, scope in enumerate(scopes):
        for key in (
            "scopeName",
            "controlScope",
            "controlLocation",
            "experimentScope",
            "experimentLocation",
            "step",
        ):
            if scope.get(key) in (None, ""):
                problems.append(f"{where}: canaryConfig.scopes[{i}].{key} is required")
    lifetime = cfg.get("lifetimeDuration")
    end = scopes[0].get("endTimeIso") if scopes else None
    if lifetime is None and end is None:
        problems.append(
            f"{where}: needs canaryConfig.lifetimeDuration (real time) or scopes[0].endTimeIso"
        )
    if isinstance(lifetime, str) and "${" not in lifetime and not ISO_DURATION.match(lifetime):
        problems.append(f"{where}: lifetimeDuration {lifetime!r} is not an ISO-8601 duration")
    thresholds = cfg.get("scoreThresholds") or {}
    values = {}
    for key in ("marginal", "pass"):
        value = thresholds.get(key)
        numeric = _numeric(value, types)
        if numeric is None:
            problems.append(f"{where}: scoreThresholds.{key} must be a number (both are required)")
        else:
            values[key] = numeric
    if (
        isinstance(values.get("marginal"), float | int)
        and isinstance(values.get("pass"), float | int)
        and values["marginal"] >= values["pass"]
    ):
        problems.append(f"{where}: scoreThresholds.marginal must be below pass")
    if stage.get("analysisType", "realTime") not in (
        "realTime",
        "realTimeAutomatic",
        "retrospective",
    ):
        problems.append(
            f"{where}: analysisType must be realTime, realTimeAutomatic or retrospective"
        )
    if stage.get("continuePipeline") and stage.get("failPipeline", True):
        problems.append(f"{where}: continuePipeline needs failPipeline false")
    return problems


def _folded_when_planned(expression: str) -> bool:
    """A ``stageEnabled`` expression whose ``${...}`` parts use only ``templateVariables``:
    V2Util.planPipeline folds them to ``true``/``false`` text (SpEL v4: StartStageHandler's
    ``withMergedContext`` before ``OptionalStageSupport`` wraps the rest in ``${}``). A whole
    expression in ``${}``, or run-time names inside, would nest ``${`` at run time."""
    parts = expressions(expression)
    whole = expression.strip()
    return not (whole.startswith("${") and whole.endswith("}") and len(parts) == 1) and all(
        TEMPLATE_VAR.search(body) and not RUNTIME_ONLY.search(body) for body in parts
    )


_INDEXED = re.compile(r"templateVariables\.([A-Za-z0-9_]+)\[\s*(\d+)\s*\]")


def unguarded_indexes(body: str) -> list[str]:
    """``templateVariables.x[i]`` without ``templateVariables.x.size() > i`` beside it: past
    the list's end Spring's Indexer throws, and a failed ``templateVariables`` expression
    aborts the plan (V2Util.planPipeline), whatever stage it is in."""
    return [
        f"{name}[{index}]"
        for name, index in _INDEXED.findall(body)
        if not re.search(
            rf"templateVariables\.{name}\.size\(\)\s*>\s*{index}\b|"
            rf"templateVariables\.{name}\.size\(\)\s*>=\s*{int(index) + 1}\b",
            body,
        )
    ]


def unread_verdicts(stages: list[Mapping[str, Any]], where: str) -> list[str]:
    """A ``kayentaCanary`` that continues on failure must have its FAILED_CONTINUE read by
    some ``stageEnabled`` (a rollback, a cancel): otherwise a failed verdict changes
    nothing, and the stages after it may still promote (``Stage.kt`` failureStatus)."""
    conditions = " ".join(
        str((s.get("stageEnabled") or {}).get("expression", ""))
        for s in stages
        if isinstance(s.get("stageEnabled"), Mapping)
    )
    return [
        f"{where}: the FAILED_CONTINUE of kayentaCanary {s.get('name')!r} is read by no "
        "stageEnabled (a failed verdict would roll nothing back)"
        for s in stages
        if s.get("type") == "kayentaCanary"
        and s.get("continuePipeline") is True
        and f"#stage('{s.get('name')}')['status'].toString() == 'FAILED_CONTINUE'" not in conditions
    ]


def _numeric(value: Any, types: Mapping[str, str]) -> float | int | str | None:
    """A number, or a lone ``${templateVariables.x}`` of a numeric type ('var')."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{\s*templateVariables\.([A-Za-z0-9_]+)\s*\}", value)
        if m and types.get(m.group(1), "").lower() in ("int", "float"):
            return "var"
    return None


def check_template(
    template: Mapping[str, Any], webhooks: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Save-time rules, graph rules, preconfigured-stage rules and reference rules.

    ``webhooks`` maps preconfigured stage type -> its orca-local entry (with ``parameters``).
    The template is checked as ``spin pipeline-templates save`` sends it (``as_sent``).
    """
    template = as_sent(template)
    problems: list[str] = []
    tid = template.get("id") or ""
    where = f"template {tid or '?'}"
    if not tid:
        problems.append(f"{where}: id is required")
    if "." in tid:
        problems.append(f"{where}: Pipeline Template IDs cannot have dots")
    if template.get("schema") != "v2":
        problems.append(f"{where}: schema must be 'v2'")
    meta = template.get("metadata") or {}
    for key in ("name", "description"):
        if not meta.get(key):
            problems.append(f"{where}: metadata.{key} is required")
    if not meta.get("scopes"):
        problems.append(f"{where}: metadata.scopes must not be empty")
    if meta.get("name") and not TEMPLATE_NAME.match(meta["name"]):
        problems.append(f"{where}: metadata.name must match {TEMPLATE_NAME.pattern}")
    types: dict[str, str] = {}
    for var in template.get("variables") or []:
        name = var.get("name", "")
        if not VARIABLE_NAME.match(name):
            problems.append(f"{where}: variable name {name!r} must match {VARIABLE_NAME.pattern}")
        if name in types:
            problems.append(f"{where}: variable {name!r} declared twice")
        vtype = str(var.get("type", "object"))
        types[name] = vtype
        if vtype.lower() not in VARIABLE_TYPES:
            problems.append(f"{where}: variable {name!r} has unknown type {vtype!r}")
        if var.get("defaultValue") is not None and not type_matches(vtype, var["defaultValue"]):
            problems.append(f"{where}: default of {name!r} is not of type {vtype}")
    if template.get("protect"):
        problems.append(f"{where}: protect true forbids config stages; ship unprotected")
    stages = (template.get("pipeline") or {}).get("stages") or []
    if not stages:
        problems.append(f"{where}: pipeline.stages is empty")
    problems += graph_problems(stages, where)
    names = [s.get("name") for s in stages]
    for dup in sorted({n for n in names if n and names.count(n) > 1}):
        problems.append(f"{where}: stage name {dup!r} is not unique (#stage() picks one)")
    for path, text in walk_strings(template.get("pipeline") or {}):
        for ref in STAGE_REF.findall(text):
            if ref not in names:
                problems.append(f"{where}: {path} names unknown stage {ref!r}")
        for body in expressions(text) + (
            [text] if path.endswith("stageEnabled.expression") else []
        ):
            for a, b in TEMPLATE_VAR.findall(body):
                if (a or b) not in types:
                    problems.append(f"{where}: {path} uses undeclared variable {(a or b)!r}")
            for index in unguarded_indexes(body):
                problems.append(
                    f"{where}: {path} reads {index} without checking size() first "
                    "(past the end the plan fails)"
                )
    for stage in stages:
        problems += _stage_problems(stage, webhooks, types, f"{where} stage {stage.get('refId')}")
    problems += unread_verdicts(stages, where)
    return problems


def _stage_problems(
    stage: Mapping[str, Any], webhooks: Mapping, types: Mapping[str, str], where: str
) -> list[str]:
    problems = []
    stype = stage.get("type")
    enabled = stage.get("stageEnabled")
    if enabled is not None:
        expr = enabled.get("expression", "") if isinstance(enabled, Mapping) else ""
        if not isinstance(enabled, Mapping) or enabled.get("type") != "expression" or not expr:
            problems.append(f"{where}: stageEnabled must be {{type: expression, expression: ...}}")
        elif "${" in expr and not _folded_when_planned(expr):
            problems.append(
                f"{where}: stageEnabled.expression is written without ${{}} (only a part over "
                "templateVariables alone, which Orca folds when it plans, may use it)"
            )
    if stype in webhooks:
        if stage.get("alias") != "preconfiguredWebhook":
            problems.append(f"{where}: preconfigured stage needs alias 'preconfiguredWebhook'")
        declared = [p["name"] for p in webhooks[stype].get("parameters") or []]
        values = stage.get("parameterValues")
        if not isinstance(values, Mapping):
            problems.append(f"{where}: parameterValues are required (Orca never applies defaults)")
            values = {}
        missing = [p for p in declared if p not in values]
        unknown = [p for p in values if p not in declared]
        if missing:
            problems.append(f"{where}: parameterValues miss {missing}")
        if unknown:
            problems.append(f"{where}: parameterValues has undeclared {unknown}")
        for key, value in values.items():
            for body in expressions(value) if isinstance(value, str) else []:
                if RUNTIME_ONLY.search(body):
                    problems.append(
                        f"{where}: parameterValues.{key} uses run-time SpEL ({body}); the payload "
                        "reads parameterValues unevaluated, so only templateVariables may appear"
                    )
        for path, text in walk_strings(webhooks[stype]):
            for a, b in PARAM_REF.findall(text):
                if (a or b) not in declared:
                    problems.append(
                        f"{where}: webhook {stype} {path} uses undeclared parameter {(a or b)!r}"
                    )
    elif stype in NATIVE_STAGES:
        for key in NATIVE_STAGES[stype]:
            if stage.get(key) in (None, "", [], {}):
                problems.append(f"{where}: {stype} needs {key}")
        if stype == "kayentaCanary":
            problems += kayenta_problems(stage, where, types)
        if stype == "deployManifest" and not (
            stage.get("manifests") or stage.get("manifestArtifactId")
        ):
            problems.append(f"{where}: deployManifest needs manifests or manifestArtifactId")
        if (
            stype == "deleteManifest"
            and stage.get("mode") == "static"
            and not stage.get("manifestName")
        ):
            problems.append(f"{where}: static deleteManifest needs manifestName ('kind name')")
        if stype == "deleteManifest" and stage.get("mode") == "label":
            selectors = (stage.get("labelSelectors") or {}).get("selectors")
            if not stage.get("kinds") or not selectors:
                problems.append(
                    f"{where}: label deleteManifest needs kinds and labelSelectors.selectors "
                    "(without selectors it deletes every object of those kinds)"
                )
    else:
        problems.append(f"{where}: unknown stage type {stype!r}")
    return problems


def check_config(config: Mapping[str, Any], template: Mapping[str, Any]) -> list[str]:
    """A templated-pipeline config against its template (what plan/save would reject), both
    as ``spin``/Deck send them (``as_sent``)."""
    config, template = as_sent(config), as_sent(template)
    where = f"config {config.get('name', '?')}"
    problems = []
    if config.get("schema") != "v2" or config.get("type") != "templatedPipeline":
        problems.append(
            f"{where}: needs schema 'v2' and type 'templatedPipeline' (V2Util.isV2Pipeline)"
        )
    for key in ("application", "name"):
        if not config.get(key):
            problems.append(f"{where}: {key} is required")
    ref = (config.get("template") or {}).get("reference", "")
    if not REFERENCE.match(ref):
        problems.append(
            f"{where}: template.reference {ref!r} must be spinnaker://id[:tag|@sha256:digest]"
        )
    elif ref.split("//", 1)[1].split(":")[0].split("@")[0] != template.get("id"):
        problems.append(
            f"{where}: template.reference does not name template {template.get('id')!r}"
        )
    if (config.get("template") or {}).get("type") != "front50/pipelineTemplate":
        problems.append(f"{where}: template.type must be front50/pipelineTemplate")
    bad = set(config.get("exclude") or []) - EXCLUDABLE
    if bad:
        problems.append(f"{where}: exclude may only hold {sorted(EXCLUDABLE)}, not {sorted(bad)}")
    given = config.get("variables") or {}
    declared = {v["name"]: v for v in template.get("variables") or []}
    for name, value in given.items():
        if value is None:
            problems.append(
                f"{where}: variable {name!r} is null; leave it out instead (Orca's "
                "configurationVariables collects with Collectors.toMap, which throws on null)"
            )
        if name not in declared:
            problems.append(
                f"{where}: variable {name!r} is not declared by the template (ignored by Orca)"
            )
    for name, var in declared.items():
        value = given.get(name, var.get("defaultValue"))
        if value is None:
            if not var.get("nullable"):
                problems.append(f"{where}: Missing variable values for: {name}")
            continue
        if not type_matches(str(var.get("type", "object")), value):
            problems.append(
                f"{where}: {name} (expected type '{var.get('type')}' found {type(value).__name__})"
            )
        elif _is_number(var.get("defaultValue")) and not _is_number(value):
            # Ours, not Orca's: a number typed `object` (whole or not, see as_sent) is still
            # a number; a string would only fail later, inside the stage's SpEL.
            problems.append(f"{where}: {name} must be a number, like its default")
    problems += _route_problems(given, declared, where)
    problems += _object_problems(given, declared, where)
    template_refs = {s.get("refId") for s in (template.get("pipeline") or {}).get("stages") or []}
    for stage in config.get("stages") or []:
        if stage.get("refId") in template_refs:
            continue  # replaces the template stage wholesale
        if not stage.get("requisiteStageRefIds") and not stage.get("inject"):
            problems.append(
                f"{where}: config stage {stage.get('refId')} needs requisiteStageRefIds or inject"
            )
    return problems


def _route_problems(given: Mapping[str, Any], declared: Mapping[str, Any], where: str) -> list:
    """Ours: per-route analysis (issue 15) needs the route-level config, and owns the
    ``route`` key of extendedScopeParams."""
    routes = given.get("critical_routes") or []
    if "critical_routes" not in declared or not routes:
        return []
    problems = []
    if not given.get("route_canary_config_id"):
        problems.append(f"{where}: critical_routes needs route_canary_config_id")
    if "route" in (given.get("extended_scope_params") or {}):
        problems.append(
            f"{where}: extended_scope_params must not hold 'route' with critical_routes "
            "(each route stage sets it)"
        )
    if not all(isinstance(r, str) and r for r in routes) or len(set(routes)) != len(routes):
        problems.append(f"{where}: critical_routes must be distinct route names")
    return problems


COHORT_KEYS = ("never_canary", "always_canary", "header", "lease")


def _object_problems(given: Mapping[str, Any], declared: Mapping[str, Any], where: str) -> list:
    """Ours: ``guard`` and ``cohorts`` are objects (typed ``object``, so Orca takes
    anything); a ``cohorts`` that is no map would break the step's ``size()`` at plan time
    inside a ``stageEnabled``, which Orca then skips silently (OptionalStageSupport)."""
    problems = []
    for name in ("guard", "cohorts"):
        if name in declared and name in given and not isinstance(given[name], Mapping):
            problems.append(f"{where}: {name} must be an object")
    cohorts = given.get("cohorts")
    if "cohorts" in declared and isinstance(cohorts, Mapping):
        unknown = sorted(set(cohorts) - set(COHORT_KEYS))
        if unknown:
            problems.append(f"{where}: cohorts has unknown keys {unknown}; use {COHORT_KEYS}")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_orca_local(doc: Mapping[str, Any]) -> list[str]:
    """The preconfigured webhooks: what Orca and Deck need to run them."""
    problems = []
    items = ((doc.get("webhook") or {}).get("preconfigured")) or []
    types = [i.get("type") for i in items]
    for dup in sorted({t for t in types if types.count(t) > 1}):
        problems.append(f"webhook type {dup!r} is not unique")
    for item in items:
        where = f"webhook {item.get('type')}"
        for key in ("label", "type", "description", "url", "method"):
            if not item.get(key):
                problems.append(f"{where}: {key} is required")
        params = item.get("parameters") or []
        names = [p.get("name") for p in params]
        for p in params:
            if p.get("type", "string") != "string":
                problems.append(f"{where}: parameter {p.get('name')} must be type string")
            if not isinstance(p.get("defaultValue", ""), str):
                problems.append(f"{where}: parameter {p.get('name')} defaultValue must be a string")
            if not isinstance(p.get("order"), int):
                problems.append(f"{where}: parameter {p.get('name')} needs an integer order")
        used = set()
        for path, text in walk_strings({k: v for k, v in item.items() if k != "parameters"}):
            for a, b in PARAM_REF.findall(text):
                used.add(a or b)
                if (a or b) not in names:
                    problems.append(f"{where}: {path} uses undeclared parameter {(a or b)!r}")
            if re.search(r"\$\{[^}]*:[^}]*\}", text):
                problems.append(
                    f"{where}: {path} has ':' inside ${{}} (Spring reads it as a default)"
                )
        for unused in sorted(set(names) - used):
            problems.append(f"{where}: parameter {unused!r} is declared but never used")
        if "payload" in item:
            if not isinstance(item["payload"], str):
                problems.append(f"{where}: payload must be a string")
            ctype = (item.get("customHeaders") or {}).get("Content-Type")
            if ctype not in (["application/json"], "application/json"):
                problems.append(f"{where}: a string payload needs Content-Type: application/json")
        if not item.get("failFastStatusCodes"):
            problems.append(f"{where}: failFastStatusCodes should list the sidecar's fatal codes")
        if item.get("waitForCompletion"):
            if not item.get("statusUrlResolution"):
                problems.append(f"{where}: waitForCompletion needs statusUrlResolution")
            if item.get("statusJsonPath") and not item.get("successStatuses"):
                problems.append(f"{where}: statusJsonPath needs successStatuses")
        headers = {**(item.get("customHeaders") or {}), **(item.get("sensitiveHeaders") or {})}
        if "Authorization" not in headers:
            problems.append(f"{where}: no Authorization header (customHeaders or sensitiveHeaders)")
    return problems
