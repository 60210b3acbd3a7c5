"""``PUT/GET /v1/upstreams/{u}/guard``: arm the guard on the canary in force, read its view.

The guard (``sidecar.guard``) is fed by ``POST /v1/kong-log`` (one call per batch) and
rolls back through ``TrafficService.rollback`` – the path of ``POST .../rollback``.

Scope of this first wiring: the guard lives in the process that armed it, and sees the
batches this process ingests. Several workers or replicas each see a sample of the batches
(detection slows by about the number of processes, ``sidecar.core.guard``); keeping the
armed config in Kong (tags, like leases) so every replica guards is the next step.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request

from sidecar.api.auth import require_token
from sidecar.core.guard_config import REFERENCES, GuardConfig
from sidecar.core.split import SplitError
from sidecar.errors import ApiError
from sidecar.gateway.entries import Tally
from sidecar.gateway.metrics import BOUNDS
from sidecar.guard import Guardian

bp = Blueprint("guard", __name__, url_prefix="/v1/upstreams")

# For the OpenAPI document; the rules themselves are GuardConfig.from_json's.
GUARD_CONFIG: dict[str, Any] = {
    "type": "object",
    "description": "Every field optional: {} is a guard with the defaults (README, Guard)",
    "properties": {
        "errors_ratio": {"type": "number", "exclusiveMinimum": 1, "maximum": 1000},
        "errors_increase": {"type": "number", "minimum": 0, "maximum": 100},
        "p99_ratio": {"type": "number", "exclusiveMinimum": 1, "maximum": 100},
        "min_requests": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "window_seconds": {"type": "number", "minimum": 0.1, "maximum": 60},
        "confidence": {"type": "number", "minimum": 0.9, "maximum": 0.999999},
        "reference": {"enum": list(REFERENCES)},
        "no_traffic_seconds": {"type": "number", "minimum": 1, "maximum": 86400},
        "trip_on_no_traffic": {"type": "boolean"},
        "alert_url": {
            "type": ["string", "null"],
            "maxLength": 2048,
            "description": "POSTed {text: ...} on a trip (Slack incoming webhook); shown redacted",
        },
    },
    "additionalProperties": False,
}
_FIGURES = {
    "type": "object",
    "required": ["requests", "errors_5xx", "error_ratio", "p99_ms"],
    "properties": {
        "requests": {"type": "integer", "minimum": 0},
        "errors_5xx": {"type": "integer", "minimum": 0},
        "error_ratio": {"type": ["number", "null"]},
        "p99_ms": {"type": ["number", "null"]},
    },
    "additionalProperties": False,
}
_TEST = {
    "type": "object",
    "required": ["evidence", "threshold", "distance", "rejected"],
    "properties": {
        "evidence": {"type": "number", "description": "log of the mixture likelihood ratio"},
        "threshold": {"type": "number", "description": "the evidence that trips"},
        "distance": {"type": "number", "description": "nats still missing (0: tripped)"},
        "rejected": {"type": "boolean"},
        "reference_p99_upper_bound_ms": {"type": ["number", "null"]},
    },
    "additionalProperties": False,
}
GUARD_VIEW: dict[str, Any] = {
    "type": "object",
    "required": ["upstream", "armed"],
    "properties": {
        "upstream": {"type": "string"},
        "armed": {"type": "boolean", "description": "false: no guard in this process"},
        "config": {**GUARD_CONFIG, "required": list(GUARD_CONFIG["properties"])},
        "status": {"enum": ["collecting", "ok", "no_canary_traffic", "tripped"]},
        "metric": {"type": ["string", "null"]},
        "message": {"type": "string"},
        "variants": {
            "type": "object",
            "properties": {"canary": _FIGURES, "reference": _FIGURES},
            "additionalProperties": False,
        },
        "tests": {
            "type": "object",
            "properties": {"5xx": _TEST, "p99_latency": _TEST},
            "additionalProperties": False,
        },
        "rolled_back": {"type": "boolean"},
        "replica": {"type": "string"},
    },
    "additionalProperties": False,
}
audit = logging.getLogger("kong_canary.audit")
EXTENSION = "kong_canary_guard"

bp.before_request(require_token)


def install(app: Flask, guardian: Guardian | None = None) -> Guardian:
    """The process's guardian; tests pass one with a fake clock and rollback."""
    if guardian is None:
        runtime = app.extensions["kong_canary"]

        def rollback(upstream: str, reason: str) -> object:
            return runtime.service.rollback(upstream)

        guardian = Guardian(
            clock=time.monotonic, rollback=rollback, bounds=BOUNDS, replica=socket.gethostname()
        ).start()
    app.extensions[EXTENSION] = guardian
    return guardian


def record(app: Flask, tally: Tally) -> None:
    """The ingest's hook: one call per batch; nothing when no guard is installed."""
    guardian = app.extensions.get(EXTENSION)
    if guardian is not None:
        guardian.record(tally)


def _guardian() -> Guardian:
    guardian = current_app.extensions.get(EXTENSION)
    return guardian if guardian is not None else install(current_app)  # type: ignore[arg-type]


@bp.put("/<upstream>/guard")
def set_guard(upstream: str):  # type: ignore[no-untyped-def]
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the body must be a JSON object (use {} for defaults)")
    try:
        config = GuardConfig.from_json(body)
    except SplitError as exc:
        raise ApiError(422, "invalid_guard", exc.rule, field=exc.field) from None
    guardian = _guardian()
    guardian.arm(upstream, config)
    audit.info(
        json.dumps(
            {"event": "guard_set", "token": g.caller.name, "upstream": upstream,
             "guard": config.as_json()},
            sort_keys=True,
        )
    )  # fmt: skip
    return jsonify(_view(upstream, guardian))


@bp.get("/<upstream>/guard")
def get_guard(upstream: str):  # type: ignore[no-untyped-def]
    return jsonify(_view(upstream, _guardian()))


def _view(upstream: str, guardian: Guardian) -> dict[str, Any]:
    view = guardian.view(upstream)
    return {"upstream": upstream, "armed": view is not None, **(view or {})}
