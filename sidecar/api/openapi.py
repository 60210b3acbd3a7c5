"""The OpenAPI 3.1 document: the components are the same JSON Schemas that validate requests
(``SCHEMAS`` names every one, request and response), the paths are the app's routes, each
described by its view's ``@operation`` (``sidecar.api.operations``). So the document cannot
drift from what the code accepts or serves; tests validate every response the suite sees
against it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from sidecar import __version__
from sidecar.api.cohorts_schema import (
    CLEAR_COHORTS,
    CLEARED,
    COHORTS,
    PLUGIN_WRITE,
    SET_COHORTS,
    cohorts_view,
)
from sidecar.api.guard_schema import GUARD_CONFIG, GUARD_VIEW
from sidecar.api.hashing import HASHING
from sidecar.api.operations import operation, paths_of
from sidecar.api.schemas import (
    CANCEL,
    PROMOTE,
    ROLLBACK,
    SET_SPLIT,
    START_RAMP,
    VARIANTS,
)
from sidecar.api.status_schema import status_schema

bp = Blueprint("openapi", __name__)

PERCENTAGES = {
    "type": "object",
    "properties": {v: {"type": "number", "minimum": 0, "maximum": 100} for v in VARIANTS},
    "required": list(VARIANTS),
    "additionalProperties": False,
}
NULLABLE_PERCENTAGES = {"oneOf": [PERCENTAGES, {"type": "null"}]}
TARGET = {
    "type": "object",
    "required": ["target", "id", "variant", "weight", "managed", "health", "addresses"],
    "properties": {
        "target": {"type": "string"},
        "id": {"type": "string"},
        "variant": {"type": ["string", "null"]},
        "weight": {"type": "integer", "minimum": 0, "maximum": 65535},
        "managed": {"type": "boolean", "description": "tagged by the sidecar"},
        "health": {"type": ["string", "null"]},
        "addresses": {"type": ["array", "null"], "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
WRITE = {
    "type": "object",
    "required": ["action", "target", "variant", "weight_before", "weight_after"],
    "properties": {
        "action": {"enum": ["create", "update", "delete"]},
        "target": {"type": "string"},
        "variant": {"type": "string"},
        "weight_before": {"type": ["integer", "null"]},
        "weight_after": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
LEASE = {
    "oneOf": [
        {
            "type": "object",
            "required": ["expires_at", "epoch"],
            "properties": {
                "expires_at": {"type": "string", "format": "date-time"},
                "epoch": {"type": "integer"},
            },
            "additionalProperties": False,
        },
        {"type": "null"},
    ],
    "description": "when the non-stable split returns to stable unless renewed",
}
SPLIT_VIEW = {
    "type": "object",
    "required": [
        "upstream",
        "algorithm",
        "hash_on",
        "split",
        "effective_split",
        "targets",
        "warnings",
    ],
    "properties": {
        "upstream": {"type": "string"},
        "algorithm": {"type": "string"},
        "hash_on": {"type": ["string", "null"]},
        "split": NULLABLE_PERCENTAGES,
        "effective_split": NULLABLE_PERCENTAGES,
        "lease": LEASE,
        "ramp": {"type": ["string", "null"], "description": "fingerprint of the driving ramp"},
        "targets": {"type": "array", "items": TARGET},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "guard": {
            "$ref": "#/components/schemas/GuardView",
            "description": "the guard's live view, when this process guards the upstream",
        },
        "cohorts": {
            "oneOf": [COHORTS, {"type": "null"}],
            "description": "the cohorts in force (PUT …/cohorts), null when none",
        },
        "served": {
            "type": ["object", "null"],
            "description": "with gateway metrics on and cohorts set: the percent of requests "
            "each variant actually served since the sidecar started counting",
            "additionalProperties": {"type": "number"},
        },
    },
    "additionalProperties": False,
}
PROPAGATION = {
    "type": "object",
    "description": "With wait: whether Kong's nodes serve the new weights, and how long that "
    "took. method health = each node's balancer (/upstreams/{u}/health, nodeWeight), hybrid = "
    "the data planes' config hashes on the control plane (new, agreed, and one push interval "
    "after the write), konnect = nodes' config_hash against the expected hash. confirmed false "
    "means the wait ran out: the change is in Kong and still propagates; treat it as a "
    "warning (or use wait_strict).",
    "required": ["confirmed", "method", "waited_ms", "nodes", "message"],
    "properties": {
        "confirmed": {"type": "boolean"},
        "method": {"enum": ["health", "hybrid", "konnect"]},
        "waited_ms": {"type": "integer", "minimum": 0},
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["node", "confirmed", "after_ms"],
                "properties": {
                    "node": {"type": "string", "description": "Admin URL or data plane"},
                    "confirmed": {"type": "boolean"},
                    "after_ms": {
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "description": "since the wait began, when the node was first seen "
                        "serving the change (null: not confirmed)",
                    },
                    "detail": {"type": "string", "description": "what the node shows instead"},
                },
                "additionalProperties": False,
            },
        },
        "message": {"type": "string"},
    },
    "additionalProperties": False,
}
CHANGE = {
    "type": "object",
    "required": [
        "status",
        "upstream",
        "previous",
        "split",
        "lease",
        "dry_run",
        "writes",
        "targets",
        "warnings",
        "propagation",
        "duration_ms",
    ],
    "properties": {
        "upstream": {"type": "string"},
        "previous": NULLABLE_PERCENTAGES,
        "split": NULLABLE_PERCENTAGES,
        "lease": LEASE,
        "dry_run": {"type": "boolean"},
        "writes": {"type": "array", "items": WRITE},
        "targets": {"type": "array", "items": TARGET},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "propagation": {"oneOf": [PROPAGATION, {"type": "null"}]},
        "duration_ms": {"type": "number", "minimum": 0},
        "status": {
            "enum": ["SUCCEEDED", "RUNNING"],
            "description": "SUCCEEDED: a dry run, or the call waited and every checkable Kong "
            "node already serves the change; RUNNING: poll statusUrl until it says SUCCEEDED",
        },
        "statusUrl": {
            "type": "string",
            "format": "uri",
            "description": "GET …/propagation for this change (Orca: waitForCompletion)",
        },
    },
    "additionalProperties": False,
}
SERVED = {
    "type": "object",
    "description": "Whether every checkable Kong node serves the expected split (one look).",
    "required": ["upstream", "status", "message", "expected", "split", "propagation"],
    "properties": {
        "upstream": {"type": "string"},
        "status": {
            "enum": ["RUNNING", "SUCCEEDED", "FAILED"],
            "description": "SUCCEEDED: served everywhere checkable; FAILED: another change "
            "replaced the split, or it was not served by until; RUNNING: not yet",
        },
        "message": {"type": "string"},
        "expected": PERCENTAGES,
        "split": NULLABLE_PERCENTAGES,
        "propagation": {"oneOf": [PROPAGATION, {"type": "null"}]},
    },
    "additionalProperties": False,
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
                "kong": {"type": "object"},
                "details": {"type": "object"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
RAMP = {
    "type": "object",
    "required": [
        "id",
        "upstream",
        "status",
        "progress",
        "split",
        "target",
        "message",
        "next_step_at",
        "statusUrl",
        "cancelUrl",
    ],
    "properties": {
        "id": {"type": "string"},
        "upstream": {"type": "string"},
        "status": {"enum": ["RUNNING", "SUCCEEDED", "FAILED", "CANCELED"]},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "split": NULLABLE_PERCENTAGES,
        "target": PERCENTAGES,
        "message": {"type": "string"},
        "next_step_at": {"type": ["number", "null"], "description": "epoch seconds"},
        "statusUrl": {"type": "string", "format": "uri"},
        "cancelUrl": {"type": "string", "format": "uri"},
        "propagation": {
            **PROPAGATION,
            "description": "present when this call applied a step and waited (wait), or "
            "looked whether Kong's nodes serve the ramp's split before moving on, completing or "
            "reporting a cancel (it does none of them before they do)",
        },
    },
    "additionalProperties": False,
}
RAMP_CANCELED = {
    "type": "object",
    "required": ["upstream", "status", "split", "message"],
    "properties": {
        "upstream": {"type": "string"},
        "status": {"const": "CANCELED"},
        "split": NULLABLE_PERCENTAGES,
        "message": {"type": "string"},
        "propagation": {"oneOf": [PROPAGATION, {"type": "null"}]},
        "statusUrl": {
            "type": "string",
            "format": "uri",
            "description": "GET …/propagation: SUCCEEDED once canary traffic has stopped",
        },
    },
    "additionalProperties": False,
}
INGEST = {
    "type": "object",
    "required": [
        "entries",
        "accepted",
        "unmapped",
        "rejected",
        "unmapped_reasons",
        "rejected_reasons",
    ],
    "properties": {
        "entries": {"type": "integer", "minimum": 0},
        "accepted": {"type": "integer", "minimum": 0},
        "unmapped": {"type": "integer", "minimum": 0},
        "rejected": {"type": "integer", "minimum": 0},
        "unmapped_reasons": {"type": "object", "additionalProperties": {"type": "integer"}},
        "rejected_reasons": {"type": "object", "additionalProperties": {"type": "integer"}},
        "unknown_upstreams": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
GATEWAY_WINDOW = {
    "type": "object",
    "required": ["upstream", "attached", "endpoint", "plugins"],
    "properties": {
        "upstream": {"type": "string"},
        "attached": {"type": "boolean", "description": "our http-log is on its services"},
        "endpoint": {"type": "string", "format": "uri", "description": "where Kong posts"},
        "plugins": {"type": "array", "items": PLUGIN_WRITE},
        "removed": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
ROLLBACK_ALL = {
    "type": "object",
    "required": ["results", "failed"],
    "properties": {
        "results": {"type": "array", "items": {"type": "object"}},
        "failed": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}
HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"const": "ok"}},
    "additionalProperties": False,
}
READY = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"enum": ["ok", "unavailable"]},
        "kong": {"type": "object"},
        "error": ERROR["properties"]["error"],
    },
    "additionalProperties": False,
}

HASHING_VIEW = {
    **SPLIT_VIEW,
    "required": [*SPLIT_VIEW["required"], "changed", "dry_run"],
    "properties": {
        **SPLIT_VIEW["properties"],
        "changed": {"type": "array", "items": {"type": "string"}},
        "dry_run": {"type": "boolean"},
    },
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "SetSplitRequest": SET_SPLIT,
    "RollbackRequest": ROLLBACK,
    "PromoteRequest": PROMOTE,
    "SplitView": SPLIT_VIEW,
    "Change": CHANGE,
    "SetHashingRequest": HASHING,
    "HashingView": HASHING_VIEW,
    "StartRampRequest": START_RAMP,
    "CancelRampRequest": CANCEL,
    "Ramp": RAMP,
    "RollbackAll": ROLLBACK_ALL,
    "RampCanceled": RAMP_CANCELED,
    "Served": SERVED,
    "IngestResult": INGEST,
    "GatewayMetrics": GATEWAY_WINDOW,
    "GuardConfig": GUARD_CONFIG,
    "GuardView": GUARD_VIEW,
    "SetCohortsRequest": SET_COHORTS,
    "ClearCohortsRequest": CLEAR_COHORTS,
    "CohortsView": cohorts_view(LEASE, PROPAGATION),
    "CohortsCleared": CLEARED,
    "Error": ERROR,
    "Health": HEALTH,
    "Ready": READY,
    "Status": status_schema(SPLIT_VIEW, NULLABLE_PERCENTAGES, RAMP),
}


def document(app: Flask | None = None) -> dict[str, Any]:
    """The document of ``app``'s routes: each view's ``@operation`` (``sidecar.api.operations``)
    under the path its rule serves. Without an app, the routes of every blueprint the sidecar
    registers, with nothing behind them (``sidecar.api.routes.route_table``)."""
    if app is None:
        from sidecar.api.routes import route_table  # routes registers this module's blueprint

        app = route_table()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kong-canary sidecar",
            "version": __version__,
            "description": "Canary traffic splitting for Kong upstreams, for Spinnaker webhooks.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths_of(app),
    }


@bp.get("/openapi.json")
@operation(
    "This document",
    public=True,
    responses={
        "200": {
            "description": "OpenAPI 3.1",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(document(current_app))  # type: ignore[arg-type]
