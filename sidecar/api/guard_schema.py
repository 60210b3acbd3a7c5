"""JSON Schemas of the guard's config and live view, for request bodies and the OpenAPI
document. The rules themselves are ``GuardConfig.from_json``'s; these mirror them."""

from __future__ import annotations

from typing import Any

from sidecar.core.guard_config import REFERENCES

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
        "routes": {
            "type": "array",
            "maxItems": 50,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Kong routes (name, else id) also judged one by one",
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
_VARIANTS = {
    "type": "object",
    "properties": {"canary": _FIGURES, "reference": _FIGURES},
    "additionalProperties": False,
}
_TESTS = {
    "type": "object",
    "properties": {"5xx": _TEST, "p99_latency": _TEST},
    "additionalProperties": False,
}
GUARD_VIEW: dict[str, Any] = {
    "type": "object",
    "required": ["upstream", "armed"],
    "properties": {
        "upstream": {"type": "string"},
        "armed": {
            "type": "boolean",
            "description": "false: no guard armed (in Kong, or in this process when Kong "
            "could not take it)",
        },
        "config": {**GUARD_CONFIG, "required": list(GUARD_CONFIG["properties"])},
        "status": {"enum": ["collecting", "ok", "no_canary_traffic", "tripped"]},
        "metric": {"type": ["string", "null"]},
        "message": {"type": "string"},
        "variants": _VARIANTS,
        "tests": _TESTS,
        "routes": {
            "type": "object",
            "description": "each listed route's own view (config.routes)",
            "additionalProperties": {
                "type": "object",
                "required": ["status", "metric", "message", "variants", "tests"],
                "properties": {
                    "status": {"enum": ["collecting", "ok", "no_canary_traffic", "tripped"]},
                    "metric": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                    "variants": _VARIANTS,
                    "tests": _TESTS,
                },
                "additionalProperties": False,
            },
        },
        "rolled_back": {"type": "boolean"},
        "replica": {
            "type": "string",
            "description": "the worker answering (host:pid); its figures are the batches it "
            "ingested",
        },
        "trip": {
            "type": "object",
            "description": "the trip recorded in Kong for this arming, by whichever worker or "
            "replica tripped first",
            "required": ["guard", "ramp", "metric", "message", "replica", "at"],
            "properties": {
                "guard": {"type": ["string", "null"]},
                "ramp": {"type": ["string", "null"]},
                "metric": {"type": ["string", "null"]},
                "message": {"type": "string"},
                "replica": {"type": "string"},
                "at": {"type": "number"},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
