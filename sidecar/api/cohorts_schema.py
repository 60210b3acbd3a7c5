"""JSON Schemas of the cohorts API (issue 14), for request bodies and the OpenAPI document.
The rules themselves are ``sidecar.core.cohorts.parse_spec``'s; these mirror them."""

from __future__ import annotations

from typing import Any

from sidecar.api.schemas import CONTEXT, FLAG, REASON, SECONDS, WAIT
from sidecar.core.cohorts import MAX_MEMBERS

_NAMES = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 512},
    "maxItems": MAX_MEMBERS,
}
MEMBERS: dict[str, Any] = {
    "type": "object",
    "description": "consumers by username, custom_id or id; groups are Kong ACL groups",
    "properties": {
        "consumers": {"oneOf": [_NAMES, {"type": "null"}]},
        "groups": {"oneOf": [_NAMES, {"type": "null"}]},
    },
    "additionalProperties": False,
}
HEADER: dict[str, Any] = {
    "type": "object",
    "description": "a request header that overrides both lists: value `always` sends the "
    "request to the canary (while it has weight), `never` to stable",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,256}$"},
        "always": {"type": "string", "pattern": r"^[\x21-\x7e]{1,256}$"},
        "never": {"type": "string", "pattern": r"^[\x21-\x7e]{1,256}$"},
    },
    "additionalProperties": False,
}
NULL = {"type": "null"}
SET_COHORTS: dict[str, Any] = {
    "type": "object",
    "description": "Every member may be null (= absent): an Orca preconfigured webhook's payload "
    "is one fixed text and cannot leave a member out",
    "properties": {
        "never_canary": {"oneOf": [MEMBERS, NULL]},
        "always_canary": {"oneOf": [MEMBERS, NULL]},
        "header": {"oneOf": [HEADER, NULL]},
        "lease": {
            "oneOf": [*SECONDS["oneOf"], {"type": "null"}],
            "description": "seconds the canary window (split and cohorts: one lease) lives "
            "unless renewed; renews the split's lease like PUT …/split does",
        },
        "dry_run": FLAG,
        "wait": {
            "oneOf": [*WAIT["oneOf"], {"type": "null"}],
            "description": "seconds (0..300) to wait until Kong's nodes serve the shadow "
            "upstreams (hybrid: the data planes' config hash, which carries the plugin too)",
        },
        "reason": REASON,
        "context": CONTEXT,
    },
    "additionalProperties": False,
}
CLEAR_COHORTS: dict[str, Any] = {
    "type": "object",
    "properties": {"dry_run": FLAG, "reason": REASON, "context": CONTEXT},
    "additionalProperties": False,
}
_IDS = {"type": "array", "items": {"type": "string"}}
RESOLVED: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "the consumer ids the lists resolved to (never wins over always)",
    "properties": {"never_canary": _IDS, "always_canary": _IDS},
    "additionalProperties": False,
}
COHORTS: dict[str, Any] = {
    "type": "object",
    "required": ["never_canary", "always_canary", "header"],
    "properties": {
        "never_canary": MEMBERS,
        "always_canary": MEMBERS,
        "header": {"oneOf": [HEADER, {"type": "null"}]},
        "resolved": RESOLVED,
        "canary_live": {"type": "boolean"},
    },
    "additionalProperties": False,
}
PLUGIN_WRITE: dict[str, Any] = {  # also the gateway window's plugins (api/openapi.py)
    "type": "object",
    "required": ["id", "service"],
    "properties": {
        "id": {"type": "string"},
        "service": {"type": "string"},
        "action": {"enum": ["create", "update", "keep"]},
    },
    "additionalProperties": False,
}
KONG_SIDE: dict[str, Any] = {
    "type": "object",
    "description": "what Kong runs: our post-function per service, the shadow upstreams",
    "required": ["plugins", "shadow_upstreams"],
    "properties": {
        "plugins": {"type": "array", "items": PLUGIN_WRITE},
        "written_plugins": {"type": "array", "items": PLUGIN_WRITE},
        "shadow_upstreams": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "id", "targets"],
                "properties": {
                    "name": {"type": "string"},
                    "id": {"type": ["string", "null"]},
                    "targets": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
                "additionalProperties": False,
            },
        },
        "competing_post_functions": {
            "type": "array",
            "description": "post-functions not ours added since the PUT that Kong weighs "
            "against ours (a route's runs instead of ours on that route; ours silences a "
            "global one); empty when there is none",
            "items": {
                "type": "object",
                "required": ["id", "scope", "service", "route", "message"],
                "properties": {
                    "id": {"type": "string"},
                    "scope": {"enum": ["service", "route", "route+service", "global"]},
                    "service": {"type": ["string", "null"]},
                    "route": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


def cohorts_view(lease: dict[str, Any], propagation: dict[str, Any]) -> dict[str, Any]:
    """GET/PUT answer; ``lease`` and ``propagation`` are the split API's schemas."""
    return {
        "type": "object",
        "required": ["upstream", "cohorts", "resolved", "canary_live"],
        "properties": {
            "upstream": {"type": "string"},
            "dry_run": {"type": "boolean"},
            "cohorts": {"oneOf": [COHORTS, {"type": "null"}]},
            "resolved": RESOLVED,
            "canary_live": {"type": "boolean"},
            "lease": lease,
            "services": {"type": "array", "items": {"type": "string"}},
            "kong": KONG_SIDE,
            "propagation": propagation,
        },
        "additionalProperties": False,
    }


CLEARED: dict[str, Any] = {
    "type": "object",
    "required": ["upstream", "dry_run", "removed"],
    "properties": {
        "upstream": {"type": "string"},
        "dry_run": {"type": "boolean"},
        "removed": {
            "type": "object",
            "required": ["plugins", "shadow_upstreams"],
            "properties": {"plugins": _IDS, "shadow_upstreams": _IDS},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
