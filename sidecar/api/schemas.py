"""Request bodies: lenient about how they arrive, strict about what they say.

Spinnaker's preconfigured webhooks send ``payload`` as a string; without an explicit
header it goes out as ``text/plain``, and parameters are strings. So we parse the
body as JSON whatever the Content-Type, accept numbers written as strings, and let
JSON Schema name the offending field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Request

from sidecar.api.body import read_body
from sidecar.api.guard_schema import GUARD_CONFIG
from sidecar.api.quick_validation import BodyValidator
from sidecar.core.lease import LeasePolicy
from sidecar.core.split import VARIANTS, Split, SplitError
from sidecar.errors import ApiError, echo, echo_in

# ---- the pieces -------------------------------------------------------------------------
PERCENT = {
    "description": "percent of traffic, 0..100 with at most two decimals (number or string)",
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": 100},
        {"type": "string", "pattern": r"^\s*\d{1,3}(\.\d{1,2})?\s*$"},
    ],
}
SPLIT = {
    "type": "object",
    "description": "Percent per variant; must sum to 100. Omitted variants are 0.",
    "properties": {v: PERCENT for v in VARIANTS},
    "additionalProperties": False,
    "minProperties": 1,
}
FLAG = {
    "description": 'true/false (a string "true"/"false" is accepted from webhook payloads)',
    "oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}],
}
TARGET_LIST = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 512},
    "maxItems": 1000,
    "uniqueItems": True,
}
TARGETS = {
    "type": "object",
    "description": "Addresses (host:port) per variant; a given list is that variant's "
    "complete set. Missing targets are created and tagged with their variant.",
    "properties": {v: TARGET_LIST for v in VARIANTS},
    "additionalProperties": False,
}
CONTEXT = {
    "type": "object",
    "description": "Who asked, for the audit log (Orca drops X-Spinnaker-* headers)",
    "properties": {
        "user": {"type": "string", "maxLength": 256},
        "execution_id": {"type": "string", "maxLength": 256},
        "pipeline": {"type": "string", "maxLength": 256},
        "stage": {"type": "string", "maxLength": 256},
        "application": {"type": "string", "maxLength": 256},
    },
    "additionalProperties": False,
}
REASON = {"type": "string", "maxLength": 1024}
# null = no guard, as when absent: Orca's preconfigured payload is one fixed string, so the
# webhook stages send "guard": null when none is given (pipeline-templates/README.md).
GUARD_OR_NULL = {**GUARD_CONFIG, "type": ["object", "null"]}
MAX_SECONDS = 10**7  # about 115 days: far beyond any lease maximum
SECONDS = {
    "description": "seconds (number or numeric string)",
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*$"},
    ],
}
# Waiting for propagation (sidecar.propagation). Orca's webhook client gives up reading after
# webhook.readTimeoutMs when set, else ok-http-client.readTimeoutMs (120 s)
# (WebhookConfiguration.webhookRequestFactory), and does not retry a timed-out PUT/POST, so a
# create call should wait less than that and let the answer's statusUrl wait longer.
WAIT_PATTERN = r"^\s*(300(\.0+)?|([12]\d\d|\d{1,2})(\.\d+)?)\s*$"
WAIT = {
    "description": "seconds (0..300, number or numeric string) to wait until Kong's nodes "
    "serve the new weights; the response's propagation says whether they did and how long "
    "it took. Keep it below Orca's webhook read timeout (webhook.readTimeoutMs, often 20 s) "
    "and poll statusUrl for longer.",
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": 300},
        {"type": "string", "pattern": WAIT_PATTERN},
    ],
}
WAIT_STRICT = {
    **FLAG,
    "description": "with wait: answer 503 propagation_timeout when the nodes did not show the "
    "change in time. The change stays applied; Orca retries, and the idempotent retry waits "
    "again. Without it a timeout is reported in propagation only (treat it as a warning).",
}


def described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """``schema`` saying what it means in this place (a copy; the original is unchanged)."""
    return {**schema, "description": description}


# ---- the request bodies (each one literal; property order is the order errors are found)
SET_SPLIT = {
    "type": "object",
    "required": ["split"],
    "properties": {
        "split": SPLIT,
        "targets": TARGETS,
        "expect": described(SPLIT, "Compare-and-set: 409 unless the current split is this"),
        "dry_run": FLAG,
        "force": described(FLAG, "Shift traffic even onto targets Kong reports unhealthy"),
        "guard": GUARD_OR_NULL,
        "reason": REASON,
        "context": CONTEXT,
        "lease": described(
            SECONDS,
            "seconds this non-stable split lives unless renewed, more than 0 and at most "
            "lease_max (default: lease_default)",
        ),
        "wait": WAIT,
        "wait_strict": WAIT_STRICT,
    },
    "additionalProperties": False,
}
ROLLBACK = {
    "type": "object",
    "properties": {
        "remove": described(FLAG, "Delete canary and baseline targets instead of weight 0"),
        "dry_run": FLAG,
        "reason": REASON,
        "context": CONTEXT,
        "wait": described(
            WAIT, f"{WAIT['description']} Default 10: a rollback's answer means traffic stopped."
        ),
        "wait_strict": WAIT_STRICT,
    },
    "additionalProperties": False,
}
PROMOTE = {
    "type": "object",
    "properties": {
        "dry_run": FLAG,
        "force": described(FLAG, "Promote even if Kong reports stable targets unhealthy"),
        "reason": REASON,
        "context": CONTEXT,
        "wait": WAIT,
        "wait_strict": WAIT_STRICT,
    },
    "additionalProperties": False,
}
START_RAMP = {
    "type": "object",
    "description": "A linear ramp (split + duration + steps) or an explicit schedule + interval",
    "properties": {
        "split": described(SPLIT, "the split the ramp ends at (linear ramp)"),
        "duration": described(SECONDS, "seconds from start to the last step"),
        "steps": {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": 100},
                {"type": "string", "pattern": r"^\s*\d{1,3}\s*$"},
            ],
            "description": "number of steps of a linear ramp (1..100)",
        },
        "schedule": {"type": "array", "items": SPLIT, "minItems": 1, "maxItems": 100},
        "interval": described(SECONDS, "seconds between the schedule's steps"),
        "start_at": {"type": "string", "format": "date-time", "maxLength": 64},
        "lease": described(
            SECONDS,
            "seconds each step lives unless the ramp moves on, more than 0 and at most "
            "lease_max minus the longest wait between steps (default: lease_default)",
        ),
        "targets": TARGETS,
        "allow_unequal": described(FLAG, "allow canary and baseline shares to differ in a step"),
        "guard": GUARD_OR_NULL,
        "reason": REASON,
        "context": CONTEXT,
        "wait": described(
            WAIT,
            "seconds each step waits, when the call or status poll that applies it runs, "
            "until Kong's nodes serve it (0..300; that response then carries propagation). It "
            "rides on statusUrl as ?wait=.",
        ),
    },
    "oneOf": [
        {"required": ["split", "duration", "steps"], "not": {"required": ["schedule"]}},
        {"required": ["schedule", "interval"], "not": {"required": ["split"]}},
    ],
    "additionalProperties": False,
}
CANCEL = {
    "type": "object",
    "properties": {
        "reason": REASON,
        "context": CONTEXT,
        "wait": described(WAIT, f"{WAIT['description']} Default 10 (it rolls back)."),
    },
    "additionalProperties": False,
}

_VALIDATORS = {
    id(schema): BodyValidator(schema)
    for schema in (SET_SPLIT, ROLLBACK, PROMOTE, START_RAMP, CANCEL)
}


def _pointer(path: Any) -> str:
    parts = [str(p) for p in path]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def parse_body(request: Request, schema: dict[str, Any], *, optional: bool = False) -> dict:
    """Parse and validate a JSON object body; 400 when it is not JSON, 422 when it breaks
    the schema, with ``field`` set to the offending path (e.g. ``split.canary``)."""
    raw = read_body(request).decode("utf-8", "replace")  # 413 past max_body_bytes
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid_json", "the request needs a JSON body", field="body")
    try:
        body = json.loads(raw)
        if isinstance(body, str):  # a payload that was JSON-encoded twice on its way
            body = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(
            400, "invalid_json", f"the body is not valid JSON: {exc}", field="body"
        ) from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object", field="body")
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = _VALIDATORS[id(schema)] = BodyValidator(schema)
    error = validator.first_error(body)
    if error is not None:
        field = _pointer(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            field = ".".join(
                filter(
                    None,
                    [_pointer(error.absolute_path).replace("body", ""), extra[0] if extra else ""],
                )
            )
            message = f"unknown field {echo(extra[0])}" if extra else error.message
        elif error.validator == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            prefix = _pointer(error.absolute_path)
            field = f"{prefix}.{missing[0]}" if prefix != "body" else missing[0]
            message = f"{field} is required"
        elif error.validator == "oneOf":
            message = f"{field} must be {error.schema.get('description', 'valid')}"
        else:
            message = f"{field}: {echo_in(error.message, error.instance)}"
        raise ApiError(422, "invalid_field", message, field=field)
    return body


def seconds(body: dict[str, Any], name: str) -> float | None:
    """A duration from the body; NaN, infinities and numbers too large for a float are
    refused (Python's JSON parser accepts ``NaN`` and 400-digit integers)."""
    value = body.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        number = math.inf
    if not math.isfinite(number) or number > MAX_SECONDS:
        raise ApiError(
            422,
            "invalid_field",
            f"{name} must be a finite number of seconds, at most {MAX_SECONDS}",
            field=name,
        )
    return number


def lease_param(body: dict[str, Any], policy: LeasePolicy) -> float | None:
    """``lease`` from a split or ramp body under the one lease rule (``LeasePolicy.seconds``),
    refused before anything is read from or written to Kong; None when absent."""
    requested = seconds(body, "lease")
    if requested is None:
        return None
    try:
        return policy.seconds(requested)
    except SplitError as exc:
        raise ApiError(422, "invalid_lease", str(exc), field=exc.field) from None


def flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    return value is True or value == "true"


def wait_param(value: str | None) -> float | None:
    """``?wait=`` on a ramp's status URL: the same rule as the body field."""
    if value is None:
        return None
    if not re.match(WAIT_PATTERN, value):
        raise ApiError(
            422, "invalid_field", f"wait must be {WAIT['description'].split(';')[0]}", field="wait"
        )
    return float(value)


def parse_split(value: Any, field: str) -> Split:
    """A split from the body, or 422 naming the variant and the rule."""
    try:
        return Split.from_percentages(value, field=field)
    except SplitError as exc:
        raise ApiError(422, "invalid_split", str(exc), field=exc.field) from None
