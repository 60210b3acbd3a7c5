"""The schema of ``GET /v1/status`` (kept apart from the change endpoints' schemas;
``sidecar.api.openapi`` lists it among the components)."""

from __future__ import annotations

from typing import Any

from sidecar.status_board import EVENTS_KEPT, HISTORY_POINTS, HISTORY_SECONDS

_NUMBER_OR_NULL = {"type": ["number", "null"]}
VARIANT_STATS = {
    "type": "object",
    "required": ["rps", "error_ratio", "p99_ms"],
    "properties": {
        "rps": {"type": "number", "minimum": 0},
        "error_ratio": {**_NUMBER_OR_NULL, "description": "5xx / all; null without requests"},
        "p99_ms": {**_NUMBER_OR_NULL, "description": "Kong's request latency, P99"},
    },
    "additionalProperties": False,
}
PER_VARIANT = {"type": "object", "additionalProperties": VARIANT_STATS}


def _points(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """A bounded time series: ``[{"at": epoch seconds, name: value}]``, oldest first."""
    return {
        "type": "array",
        "maxItems": HISTORY_POINTS,
        "items": {
            "type": "object",
            "required": ["at", name],
            "properties": {"at": {"type": "number"}, name: value},
            "additionalProperties": False,
        },
    }


def status_schema(
    split_view: dict[str, Any], nullable_percentages: dict[str, Any], ramp: dict[str, Any]
) -> dict[str, Any]:
    """The answer of ``GET /v1/status``: each upstream is its split view plus the ramp's
    schedule, the split history and the gateway metrics."""
    ramp_entry = {
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "required": ["fingerprint", "id", "status", "message"],
                "properties": {
                    **{k: v for k, v in ramp["properties"].items() if k != "status"},
                    "fingerprint": {"type": "string"},
                    "id": {"type": ["string", "null"]},
                    "status": {"enum": ["RUNNING", "SUCCEEDED", "FAILED", "CANCELED", None]},
                    "started_at": {"type": "number"},
                    "ends_at": {"type": "number"},
                    "steps": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
                "description": "id null: the ramp was started through another worker or "
                "replica, and this one cannot know its schedule",
            },
        ]
    }
    upstream = {
        "type": "object",
        "required": [*split_view["required"], "ramp", "history", "metrics"],
        "properties": {
            **split_view["properties"],
            "ramp": ramp_entry,
            "history": _points("split", nullable_percentages),
            "metrics": {
                "type": "object",
                "required": ["available", "message", "now", "series"],
                "properties": {
                    "available": {"type": "boolean"},
                    "message": {"type": "string"},
                    "now": PER_VARIANT,
                    "series": _points("variants", PER_VARIANT),
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "required": [
            "generated_at",
            "gateway_metrics",
            "history",
            "upstreams",
            "problems",
            "events",
        ],
        "properties": {
            "generated_at": {"type": "number", "description": "epoch seconds"},
            "gateway_metrics": {"type": "boolean", "description": "the gateway_metrics setting"},
            "history": {
                "type": "object",
                "description": f"the bound of the in-memory history: {HISTORY_SECONDS:g} s, at "
                f"most {HISTORY_POINTS} points per upstream (per worker)",
                "required": ["seconds", "points"],
                "properties": {"seconds": {"type": "number"}, "points": {"type": "integer"}},
                "additionalProperties": False,
            },
            "upstreams": {"type": "array", "items": upstream},
            "problems": {
                "type": "array",
                "description": "managed upstreams that could not be read, with the error",
                "items": {
                    "type": "object",
                    "required": ["upstream", "error"],
                    "properties": {"upstream": {"type": "string"}, "error": {"type": "object"}},
                },
            },
            "events": {
                "type": "array",
                "maxItems": EVENTS_KEPT,
                "description": "the last audit events this worker logged, oldest first",
                "items": {
                    "type": "object",
                    "required": ["at", "event"],
                    "properties": {"at": {"type": "number"}, "event": {"type": "string"}},
                },
            },
        },
        "additionalProperties": False,
    }
