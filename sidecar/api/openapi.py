"""The OpenAPI 3.1 document, built from the same JSON Schemas that validate requests,
so the document cannot drift from what the code accepts. Tests validate every response
the suite sees against it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

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
from sidecar.api.schemas import (
    CANCEL,
    PROMOTE,
    ROLLBACK,
    SET_SPLIT,
    START_RAMP,
    VARIANTS,
    WAIT_PATTERN,
)
from sidecar.api.served import EPOCH_PARAM_PATTERN, SPLIT_PARAM_PATTERN
from sidecar.api.status_schema import status_paths, status_schema
from sidecar.core.names import UPSTREAM_NAME_PATTERN

bp = Blueprint("openapi", __name__)

_NUMBER_OR_NULL = {"type": ["number", "null"]}
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


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "the body is not JSON (Orca: fail fast)",
        401: "no or invalid API token",
        403: "the token may not do this, or not on this upstream",
        404: "Kong has no such upstream",
        409: "refused: expect mismatch, unhealthy target, or a target of unknown variant; "
        "or concurrent_change: Kong read back after the change differs (someone else changed "
        "the upstream meanwhile)",
        413: "the body is larger than max_body_bytes (code body_too_large)",
        422: "the body breaks a rule; error.field names the field",
        502: "Kong answered with an error (credentials, read-only node, half-applied change "
        "that was undone)",
        503: "Kong is unreachable or timed out; overloaded: the sidecar is busy with requests "
        "waiting on Kong (Retry-After); upstream_busy: another change of this upstream held "
        "its lock for lock_wait seconds; window_not_live: a canary's first change waits for "
        "the gateway metrics window to run in Kong, which would take longer than "
        "gateway_live_wait (error.details.retry_after; nothing moved); Orca retries",
    }
    return {str(s): _json("Error", meaning[s]) for s in statuses}


UPSTREAM_PARAM = {
    "name": "upstream",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": UPSTREAM_NAME_PATTERN},
    "description": "Kong upstream name or id",
}


RAMP_PARAM = {
    "name": "ramp_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "ramp id as returned when the ramp started",
}


RAMP_WAIT_PARAM = {
    "name": "wait",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": WAIT_PATTERN},
    "description": "seconds (0..300) a poll that applies a step waits for Kong's nodes; "
    "statusUrl carries it when the ramp was started with wait",
}


SERVED_PARAMS = [
    {
        "name": "split",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "pattern": SPLIT_PARAM_PATTERN},
        "description": "the split expected: stable,baseline,canary percentages",
    },
    *(
        {
            "name": name,
            "in": "query",
            "required": True,
            "schema": {"type": "string", "pattern": EPOCH_PARAM_PATTERN},
            "description": about,
        }
        for name, about in (
            ("since", "epoch seconds just before the change"),
            ("until", "epoch seconds after which a change not yet served is FAILED"),
        )
    ),
]


def _request_body(schema: str, *, required: bool) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"required": required, "content": {"application/json": {"schema": ref}}}


def _change_op(summary: str, body: str, *, required: bool) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [UPSTREAM_PARAM],
        "security": [{"bearer": []}],
        "requestBody": _request_body(body, required=required),
        "responses": {
            "200": _json("Change", "the change made (or planned, with dry_run)"),
            **_errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
            "503": _json(
                "Error",
                "Kong is unreachable or timed out, or (wait_strict) the applied change did not "
                "reach every node in time: code propagation_timeout, details.propagation. "
                "Orca retries; the retry is idempotent and waits again",
            ),
        },
    }


def _gateway_window_ops() -> dict[str, Any]:
    """The http-log window by hand. With gateway_metrics on, set/ramp/rollback/promote open
    and close it on their own and report a failure as a warning (the split still applies)."""
    about = (
        "Kong's http-log plugin on every Kong service whose host is the upstream, posting to "
        "/v1/kong-log with the gateway ingest token; tagged managed-by=kong-canary. With "
        "gateway_metrics on, the next split change re-opens or closes it."
    )
    refused = "gateway_metrics_not_configured (no ingest token/URL)"
    refused_open = f"{refused}; no_service (no Kong service has the upstream as host), "
    refused_open += "http_log_in_use (another http-log), ingest_token_not_allowed"

    def op(summary: str, role: str, statuses: tuple[int, ...]) -> dict[str, Any]:
        return {
            "summary": summary,
            "description": f"{about} Token role: {role}.",
            "parameters": [UPSTREAM_PARAM],
            "security": [{"bearer": []}],
            "responses": {
                "200": _json("GatewayMetrics", "the window as it is now"),
                **_errors(*statuses),
                "409": _json("Error", refused),
            },
        }

    statuses = (401, 403, 404, 409, 422, 502, 503)
    opened = op("Open the window: attach http-log", "write", statuses)
    opened["responses"]["409"] = _json("Error", refused_open)
    return {
        "get": op("Is the window open: our http-log plugins", "read", statuses),
        "post": opened,
        "delete": op("Close the window: remove our http-log", "write", statuses),
    }


def _cohorts_ops() -> dict[str, Any]:
    """Cohorts (issue 14): a post-function per service of the upstream and two shadow
    upstreams, ``{u}--stable`` and ``{u}--canary``; removed by rollback, promote, lease expiry."""
    refused = (
        "refused, Kong unchanged: untrusted_lua_off, post_function_unavailable, "
        "post_function_in_use (a post-function not ours on a service, on one of its routes "
        "or global: Kong runs only the most specific), cohorts_unsupported "
        "(Konnect, DB-less), no_service, shadow_name_taken"
    )

    def op(summary: str, answer: str, body: str | None, statuses: tuple[int, ...]):  # type: ignore[no-untyped-def]
        out: dict[str, Any] = {
            "summary": summary,
            "parameters": [UPSTREAM_PARAM],
            "security": [{"bearer": []}],
            "responses": {
                "200": _json(answer, summary),
                **_errors(*statuses),
                "409": _json("Error", refused),
                "422": _json(
                    "Error", "a field breaks a rule (error.field), or unknown_consumer naming it"
                ),
            },
        }
        if body is not None:
            out["requestBody"] = _request_body(body, required=body == "SetCohortsRequest")
        return out

    statuses = (400, 401, 403, 404, 409, 413, 422, 502, 503)
    return {
        "get": op(
            "The cohorts in force, their consumer ids, what Kong runs",
            "CohortsView",
            None,
            (401, 403, 404, 422, 502, 503),
        ),
        "put": op("Set the cohorts (idempotent)", "CohortsView", "SetCohortsRequest", statuses),
        "delete": op(
            "Remove the cohorts: plugins, then shadow upstreams",
            "CohortsCleared",
            "ClearCohortsRequest",
            statuses,
        ),
    }


def document() -> dict[str, Any]:
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
        "paths": {
            "/v1/upstreams/{upstream}/split": {
                "get": {
                    "summary": "Read the current split, targets, health and warnings",
                    "parameters": [UPSTREAM_PARAM],
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json("SplitView", "the current split"),
                        **_errors(401, 403, 404, 422, 502, 503),
                    },
                },
                "put": _change_op("Set the split (idempotent)", "SetSplitRequest", required=True),
            },
            "/v1/upstreams/{upstream}/rollback": {
                "post": _change_op(
                    "Roll back: stable takes all traffic", "RollbackRequest", required=False
                )
            },
            "/v1/upstreams/{upstream}/promote": {
                "post": _change_op(
                    "Promote: stable 100%, canary and baseline removed",
                    "PromoteRequest",
                    required=False,
                )
            },
            "/v1/upstreams/{upstream}/hashing": {
                "put": {
                    "summary": "Sticky canaries: set Kong's hash_on (forces consistent-hashing)",
                    "parameters": [UPSTREAM_PARAM],
                    "security": [{"bearer": []}],
                    "requestBody": _request_body("SetHashingRequest", required=True),
                    "responses": {
                        "200": _json("HashingView", "the upstream after the change"),
                        **_errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
                    },
                }
            },
            "/v1/upstreams/{upstream}/ramps": {
                "post": {
                    "summary": "Start a ramp (Orca: wait for completion, poll statusUrl)",
                    "parameters": [UPSTREAM_PARAM],
                    "security": [{"bearer": []}],
                    "requestBody": _request_body("StartRampRequest", required=True),
                    "responses": {
                        "202": _json("Ramp", "started; statusUrl and cancelUrl are absolute"),
                        **_errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
                    },
                }
            },
            "/v1/upstreams/{upstream}/ramps/cancel": {
                "post": {
                    "summary": "Cancel the ramp an execution started on this upstream "
                    "(Orca's cancelEndpoint; body context.execution_id)",
                    "parameters": [UPSTREAM_PARAM],
                    "security": [{"bearer": []}],
                    "requestBody": _request_body("CancelRampRequest", required=False),
                    "responses": {
                        "200": _json("RampCanceled", "cancelled and rolled back"),
                        **_errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
                    },
                }
            },
            "/v1/upstreams/{upstream}/propagation": {
                "get": {
                    "summary": "Is a change served by every checkable Kong node (statusUrl of "
                    "set split, rollback, promote and cancel; never writes)",
                    "parameters": [UPSTREAM_PARAM, *SERVED_PARAMS],
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json("Served", "status RUNNING, SUCCEEDED or FAILED"),
                        **_errors(401, 403, 404, 422, 502, 503),
                    },
                }
            },
            "/v1/ramps/{ramp_id}": {
                "get": {
                    "summary": "A ramp's status; moves the upstream on when a step is due",
                    "parameters": [RAMP_PARAM, RAMP_WAIT_PARAM],
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json("Ramp", "status (always a string status)"),
                        **_errors(401, 403, 404, 409, 422, 502, 503),
                    },
                }
            },
            "/v1/ramps/{ramp_id}/cancel": {
                "post": {
                    "summary": "Cancel a ramp and roll the canary back",
                    "parameters": [RAMP_PARAM],
                    "security": [{"bearer": []}],
                    "requestBody": _request_body("CancelRampRequest", required=False),
                    "responses": {
                        "200": _json("Ramp", "cancelled"),
                        **_errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
                    },
                }
            },
            "/v1/upstreams/{upstream}/gateway-metrics": _gateway_window_ops(),
            "/v1/upstreams/{upstream}/cohorts": _cohorts_ops(),
            "/v1/upstreams/{upstream}/guard": {
                "put": {
                    "summary": "Arm (or re-arm, with fresh evidence) the guard on the canary",
                    "description": "Compares the canary with the old version on every "
                    "ingested http-log batch and rolls it back on a clear 5xx or P99 "
                    "regression. Kept by the process that armed it (see README, Guard).",
                    "parameters": [UPSTREAM_PARAM],
                    "security": [{"bearer": []}],
                    "requestBody": _request_body("GuardConfig", required=True),
                    "responses": {
                        "200": _json("GuardView", "the guard as armed"),
                        **_errors(400, 401, 403, 422),
                    },
                },
                "get": {
                    "summary": "The guard's live view: figures, tests and distance to a trip",
                    "parameters": [UPSTREAM_PARAM],
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json("GuardView", "armed false when no guard is set"),
                        **_errors(401, 403, 422),
                    },
                },
            },
            "/v1/kong-log": {
                "post": {
                    "summary": "Ingest Kong http-log batches; counts per upstream and variant",
                    "description": "A JSON array (batched) or one object per request. The "
                    "upstream comes from each entry's service host, or the "
                    "X-Kong-Canary-Upstream header / ?upstream= override.",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {}}},
                    },
                    "responses": {
                        "200": _json("IngestResult", "counted (bad entries are reported)"),
                        "413": _json(
                            "Error", "batch larger than kong_log_max_body_bytes (body_too_large)"
                        ),
                        **_errors(400, 401, 403, 404, 422, 503),
                    },
                }
            },
            "/v1/rollback-all": {
                "post": {
                    "summary": "Incident: every managed upstream back to stable (admin token)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _json("RollbackAll", "all rolled back"),
                        "502": _json("RollbackAll", "some rollbacks failed (see results)"),
                        **_errors(401, 403, 503),
                    },
                }
            },
            **status_paths(_json, _errors, UPSTREAM_PARAM),
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": _json("Health", "alive")}}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: Kong reachable and credentials accepted",
                    "responses": {
                        "200": _json("Ready", "ready"),
                        "503": _json("Ready", "Kong unreachable or refusing us"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
    }


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(document())
