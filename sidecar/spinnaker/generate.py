"""Render ``pipeline-templates/`` from its one definition, ``source.yaml``.

Orca's preconfigured webhooks and the MPT v2 templates must agree on stage type names,
parameter names, URLs, status mappings and payloads. Writing them twice drifts, so both are
a pure function of ``source.yaml`` plus the sidecar base URL; the committed outputs use the
default URL and a test fails when they are stale.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "pipeline-templates"
SOURCE_NAME = "source.yaml"
RENDER_COMMAND = "kong-canary spinnaker render --sidecar-url URL [--out DIR]"
PRECONFIGURED_ALIAS = "preconfiguredWebhook"
FRONT50_ACCOUNT = "front50ArtifactCredentials"
FRONT50_TYPE = "front50/pipelineTemplate"

# Orca's UserConfiguredUrlRestrictions defaults (orca-core config/UserConfiguredUrlRestrictions).
DEFAULT_EXCLUDED_DOMAINS = ("spinnaker", "local", "localdomain", "internal")

_PARAM = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")
_RAW = "\x00raw:{}\x00"


class SourceError(ValueError):
    """The source definition is inconsistent (unknown parameter, stage type, variable...)."""


def param_ref(name: str) -> str:
    return f"${{parameterValues['{name}']}}"


def load_source(directory: Path = DEFAULT_DIR) -> dict[str, Any]:
    with (directory / SOURCE_NAME).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def expand(text: str) -> str:
    """``{{name}}`` -> ``${parameterValues['name']}``; other text (and SpEL) unchanged."""
    return _PARAM.sub(lambda m: param_ref(m.group(1)), text)


def audit_context(stage_type: str) -> dict[str, str]:
    """Who and what asked; Orca drops X-Spinnaker-* headers, so it travels in the body."""
    return {
        "user": "${trigger.user}",
        "execution_id": "${execution.id}",
        "pipeline": "${execution.name}",
        "stage": stage_type,
        "application": "${execution.application}",
    }


def _payload_value(value: Any, stage_type: str, key: str | None = None) -> Any:
    if key == "context" and value is True:
        return audit_context(stage_type)
    if isinstance(value, Mapping):
        if set(value) == {"raw"}:
            return _RAW.format(value["raw"])
        return {k: _payload_value(v, stage_type, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_payload_value(v, stage_type) for v in value]
    if isinstance(value, str):
        return expand(value)
    return value


def render_payload(spec: Mapping[str, Any], stage_type: str) -> str:
    """A JSON *string*: Orca's preconfigured ``payload`` is a String, sent as-is."""
    text = json.dumps(_payload_value(spec, stage_type), separators=(", ", ": "))
    return re.sub(r'"\\u0000raw:([A-Za-z0-9_]+)\\u0000"', lambda m: param_ref(m.group(1)), text)


def join_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + expand(path)


def fail_fast_codes(source: Mapping[str, Any], spec: Mapping[str, Any]) -> list[int]:
    return sorted(
        set(source["fail_fast_status_codes"]) | set(spec.get("extra_fail_fast_status_codes", []))
    )


def webhook_entry(
    stage_type: str,
    spec: Mapping[str, Any],
    source: Mapping[str, Any],
    base_url: str,
    *,
    sensitive_headers: bool = True,
) -> dict[str, Any]:
    """One ``webhook.preconfigured[]`` item (fields of WebhookProperties.PreconfiguredWebhook)."""
    auth = {"Authorization": [f"Bearer ${{{source['token_env']}}}"]}
    headers: dict[str, list[str]] = {"Content-Type": ["application/json"]}
    entry: dict[str, Any] = {
        "label": spec["label"],
        "type": stage_type,
        "enabled": True,
        "description": " ".join(spec["description"].split()),
        "method": spec["method"],
        "url": join_url(base_url, spec["path"]),
        "customHeaders": headers if sensitive_headers else {**headers, **auth},
    }
    if sensitive_headers:
        entry["sensitiveHeaders"] = auth
    if "payload" in spec:
        entry["payload"] = render_payload(spec["payload"], stage_type)
    entry["failFastStatusCodes"] = fail_fast_codes(source, spec)
    wait = spec.get("wait")
    entry["waitForCompletion"] = wait is not None
    if wait is not None:
        for key in (
            "statusUrlResolution",
            "statusUrlJsonPath",
            "statusJsonPath",
            "progressJsonPath",
            "successStatuses",
            "canceledStatuses",
            "terminalStatuses",
        ):
            if key in wait:
                entry[key] = wait[key]
        if "cancelPath" in wait:  # a stage with nothing to undo has no cancel call
            entry["signalCancellation"] = True
            entry["cancelEndpoint"] = join_url(base_url, wait["cancelPath"])
            entry["cancelMethod"] = wait.get("cancelMethod", "POST")
            entry["cancelPayload"] = render_payload(wait["cancelPayload"], stage_type)
    entry["parameters"] = [
        {
            "name": p["name"],
            "label": p["label"],
            "description": p["description"],
            "type": "string",
            "defaultValue": str(p["default"]),
            "order": order,
        }
        for order, p in enumerate(spec["parameters"], start=1)
    ]
    return entry


def url_restrictions(base_url: str) -> dict[str, Any]:
    """The least ``user-configured-url-restrictions`` change that lets Orca reach the URL.

    Mirrors ``UserConfiguredUrlRestrictions.validateURI``: localhost needs
    ``rejectLocalhost: false`` (and then skips the name filter); an IP literal needs
    ``rejectVerbatimIps: false``; a cluster name ending in an excluded domain (``.spinnaker``,
    ``.local``) needs that domain dropped from ``excludedDomains`` (the list is replaced).
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise SourceError(f"sidecar URL must be http or https: {base_url}")
    host = (parts.hostname or "").lower()
    if not host:
        raise SourceError(f"sidecar URL has no host: {base_url}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SourceError(f"sidecar URL must be a base URL without path or query: {base_url}")
    out: dict[str, Any] = {}
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        out["rejectVerbatimIps"] = False
        if address.is_loopback:
            out["rejectLocalhost"] = False
        if address.is_link_local:
            out["rejectLinkLocal"] = False
        return out
    if host == "localhost":
        out["rejectLocalhost"] = False
        return out
    if "." not in host:
        raise SourceError(
            f"Orca rejects single-word hosts ({host!r}); use <service>.<namespace>, e.g. "
            "kong-canary.spinnaker, or localhost for a same-pod sidecar"
        )
    blocked = [d for d in DEFAULT_EXCLUDED_DOMAINS if host.endswith("." + d)]
    if blocked:
        out["excludedDomains"] = [d for d in DEFAULT_EXCLUDED_DOMAINS if d not in blocked]
    return out


_HEADER = """\
# GENERATED from pipeline-templates/source.yaml by:
#   {command}
# Do not edit; edit source.yaml and re-render. Sidecar: {base_url}
#
# {variant}
# Put this in Orca's profile (merge with what is there):
#   Halyard:             ~/.hal/<deployment>/profiles/orca-local.yml, then `hal deploy apply`
#   Spinnaker Operator:  spec.spinnakerConfig.profiles.orca (SpinnakerService)
#   spinnaker-kustomize: overlays/config/files/orca-local.yml
# ${{{token_env}}} is a Spring placeholder: set that environment variable on Orca (from a
# Kubernetes Secret), or replace it with a kork secret reference (encrypted:k8s!n:...!k:...).
"""

_VARIANTS = {
    True: "Spinnaker 2026.1+: the token is a sensitiveHeader, never stored in the execution.",
    False: (
        "Before Spinnaker 2026.1: Orca ignores sensitiveHeaders, so the token is a customHeader\n"
        "# and VISIBLE in every execution's context. Use a dedicated low-privilege sidecar token\n"
        "# (role write, upstreams limited to this app's) and rotate it."
    ),
}


def render_orca_local(
    source: Mapping[str, Any], base_url: str, *, sensitive_headers: bool = True
) -> str:
    doc: dict[str, Any] = {}
    restrictions = url_restrictions(base_url)
    if restrictions:
        doc["user-configured-url-restrictions"] = restrictions
    doc["webhook"] = {
        "preconfigured": [
            webhook_entry(t, spec, source, base_url, sensitive_headers=sensitive_headers)
            for t, spec in source["webhooks"].items()
        ]
    }
    header = _HEADER.format(
        command=RENDER_COMMAND,
        base_url=base_url,
        variant=_VARIANTS[sensitive_headers],
        token_env=source["token_env"],
    )
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)
    return header + body


def _variable(name: str, decl: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": decl.get("type", "object")}
    out["description"] = decl["description"]
    for key in ("defaultValue", "example", "nullable"):
        if key in decl:
            out[key] = decl[key]
    return out


def expand_stage(stage: Mapping[str, Any], webhooks: Mapping[str, Any]) -> dict[str, Any]:
    """``use: <type>`` -> a preconfigured webhook stage with every parameter explicit.

    Orca never applies a parameter's ``defaultValue`` (Deck does, when a human edits the
    stage), so a template must carry all of them in ``parameterValues``.
    """
    if "use" not in stage:
        return copy.deepcopy(dict(stage))
    stage_type = stage["use"]
    if stage_type not in webhooks:
        raise SourceError(f"stage {stage.get('refId')}: unknown webhook stage type {stage_type!r}")
    params = webhooks[stage_type]["parameters"]
    given = dict(stage.get("parameterValues") or {})
    unknown = sorted(set(given) - {p["name"] for p in params})
    if unknown:
        raise SourceError(f"stage {stage.get('refId')}: unknown parameters {unknown}")
    out: dict[str, Any] = {
        "refId": stage["refId"],
        "name": stage["name"],
        "type": stage_type,
        "alias": PRECONFIGURED_ALIAS,
        "requisiteStageRefIds": list(stage.get("requisiteStageRefIds", [])),
    }
    for key, value in stage.items():
        if key not in out and key not in ("use", "parameterValues"):
            out[key] = copy.deepcopy(value)
    out["parameterValues"] = {p["name"]: given.get(p["name"], str(p["default"])) for p in params}
    return out


# Route slots (issue 15): MPT v2 has no loop (V2PipelineTemplate's stages are a plain list;
# V2Util.planPipeline only evaluates SpEL in them), so a template carries a fixed number of
# route-level analysis stages, each enabled by ``critical_routes.size() > i``. In source.yaml
# ``{slot}`` (1-based) and ``{index}`` (0-based) mark what differs per slot: a stage under
# ``route_slots:`` is written once per slot, and so is a list item holding ``{slot}``.
_SLOT_MARKS = ("{slot}", "{index}")


def _has_slot(value: Any) -> bool:
    return any(mark in text for _, text in _strings(value) for mark in _SLOT_MARKS)


def _strings(value: Any) -> list[tuple[Any, str]]:
    if isinstance(value, Mapping):
        return [pair for item in value.values() for pair in _strings(item)]
    if isinstance(value, list):
        return [pair for item in value for pair in _strings(item)]
    return [(None, value)] if isinstance(value, str) else []


def for_slot(value: Any, index: int) -> Any:
    """``value`` with ``{slot}``/``{index}`` filled in for slot ``index`` (0-based); a list
    item holding a mark is written once per slot by the caller (``expand_slots``)."""
    if isinstance(value, Mapping):
        return {k: for_slot(v, index) for k, v in value.items()}
    if isinstance(value, list):
        return [for_slot(v, index) for v in value]
    if isinstance(value, str):
        return value.replace("{slot}", str(index + 1)).replace("{index}", str(index))
    return value


def expand_slots(value: Any, slots: int) -> Any:
    """Every list item that holds a slot mark becomes ``slots`` items, one per slot;
    ``{slots}`` is their number."""
    if isinstance(value, Mapping):
        return {k: expand_slots(v, slots) for k, v in value.items()}
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if _has_slot(item):
                out += [for_slot(item, i) for i in range(slots)]
            else:
                out.append(expand_slots(item, slots))
        return out
    if isinstance(value, str):
        return value.replace("{slots}", str(slots))
    return value


def _status_is(name: str, op: str, status: str) -> str:
    return f"#stage('{name}')['status'].toString() {op} '{status}'"


def stage_condition(when: Mapping[str, Any], earlier: list[str]) -> dict[str, str]:
    """``when:`` -> a ``stageEnabled`` expression over the stages' statuses
    (OptionalStageSupport): ``succeeded`` names must be SUCCEEDED, ``not_failed`` names must
    not be FAILED_CONTINUE (a SKIPPED, unused route slot is fine), ``also`` is appended as
    is; ``any_failed: before`` holds when any stage listed before this one (that continues
    on failure) is FAILED_CONTINUE (the rollback branch)."""
    if when.get("any_failed") == "before":
        return {
            "type": "expression",
            "expression": " || ".join(_status_is(n, "==", "FAILED_CONTINUE") for n in earlier),
        }
    clauses = [_status_is(n, "==", "SUCCEEDED") for n in when.get("succeeded", [])]
    clauses += [_status_is(n, "!=", "FAILED_CONTINUE") for n in when.get("not_failed", [])]
    clauses += list(when.get("also", []))
    return {"type": "expression", "expression": " && ".join(clauses)}


def template_stages(source: Mapping[str, Any], raw: list[Mapping[str, Any]]) -> list[dict]:
    """The stages of a template: route slots written out, ``when:`` turned into
    ``stageEnabled``, ``use:`` into preconfigured webhook stages."""
    slots = int(source.get("critical_route_slots", 0))
    flat: list[Mapping[str, Any]] = []
    for stage in raw:
        if set(stage) == {"route_slots"}:
            flat += [for_slot(stage["route_slots"], i) for i in range(slots)]
        else:
            flat.append(stage)
    stages = []
    for position, stage in enumerate(flat):
        stage = expand_slots(dict(stage), slots)
        if "when" in stage:
            # only a stage that continues on failure can end FAILED_CONTINUE
            earlier = [s["name"] for s in flat[:position] if s.get("continuePipeline") is True]
            stage = {  # stageEnabled where `when` was, so the rendered order follows source
                ("stageEnabled" if k == "when" else k): (
                    stage_condition(v, earlier) if k == "when" else v
                )
                for k, v in stage.items()
            }
        stages.append(expand_stage(stage, source["webhooks"]))
    return stages


def render_template(source: Mapping[str, Any], tpl: Mapping[str, Any]) -> dict[str, Any]:
    shared = source["variables"]
    variables = []
    for name in tpl["variables"]:
        if name not in shared:
            raise SourceError(f"template {tpl['id']}: unknown shared variable {name!r}")
        variables.append(_variable(name, shared[name]))
    variables += [_variable(n, d) for n, d in (tpl.get("extra_variables") or {}).items()]
    pipeline = copy.deepcopy(dict(tpl["pipeline"]))
    stages = template_stages(source, pipeline.pop("stages"))
    metadata = dict(tpl["metadata"])
    metadata["description"] = " ".join(metadata["description"].split())
    return {
        "schema": "v2",
        "id": tpl["id"],
        "protect": False,
        "metadata": metadata,
        "variables": variables,
        "pipeline": {
            "keepWaitingPipelines": pipeline.pop("keepWaitingPipelines", False),
            "limitConcurrent": pipeline.pop("limitConcurrent", True),
            "triggers": pipeline.pop("triggers", []),
            "parameterConfig": pipeline.pop("parameterConfig", []),
            "notifications": pipeline.pop("notifications", []),
            "expectedArtifacts": pipeline.pop("expectedArtifacts", []),
            **pipeline,
            "stages": stages,
        },
    }


def render_sample(tpl: Mapping[str, Any]) -> dict[str, Any]:
    """A templated-pipeline config (what ``spin pipeline save --file`` takes)."""
    sample = tpl["sample"]
    return {
        "schema": "v2",
        "type": "templatedPipeline",
        "application": sample["application"],
        "name": sample["name"],
        "description": f"From template {tpl['id']}",
        "template": {
            "artifactAccount": FRONT50_ACCOUNT,
            "type": FRONT50_TYPE,
            "reference": f"spinnaker://{tpl['id']}:stable",
        },
        "variables": copy.deepcopy(sample["variables"]),
        "exclude": [],
        "triggers": [],
        "parameters": [],
        "notifications": [],
        "stages": [],
    }


def _json(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"


def render_all(source: Mapping[str, Any], base_url: str | None = None) -> dict[str, str]:
    """Relative path -> file content, for every rendered output."""
    base_url = (base_url or source["sidecar_url"]).rstrip("/")
    files = {
        "orca-local.yml": render_orca_local(source, base_url),
        "orca-local.pre-2026.1.yml": render_orca_local(source, base_url, sensitive_headers=False),
    }
    for tpl in source["templates"]:
        files[f"templates/{tpl['id']}.json"] = _json(render_template(source, tpl))
        files[f"samples/{tpl['id']}.json"] = _json(render_sample(tpl))
    return files


def write_all(
    out_dir: Path, base_url: str | None = None, source_dir: Path = DEFAULT_DIR
) -> list[Path]:
    written = []
    for rel, content in render_all(load_source(source_dir), base_url).items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def stale_files(
    directory: Path = DEFAULT_DIR, base_url: str | None = None, source_dir: Path | None = None
) -> list[str]:
    """Rendered files in ``directory`` that are missing or differ from what ``source.yaml``
    (in ``source_dir``, default ``directory``) renders to."""
    stale = []
    for rel, content in render_all(load_source(source_dir or directory), base_url).items():
        path = directory / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(rel)
    return stale
