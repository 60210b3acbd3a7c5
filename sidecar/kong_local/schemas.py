"""Upstream and target schemas: validation messages, defaults, shorthands and rendering.

Sources: ``kong/db/schema/entities/{upstreams,targets}.lua`` and ``kong/db/schema/typedefs.lua``
(tags), with every message checked against the recordings in ``tests/fixtures/kong``.
Input arrives as decoded JSON (typed) or as form fields (all strings), hence ``from_form``.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from typing import Any

from sidecar.kong_local.addresses import normalize_ip
from sidecar.kong_local.errors import schema_violation
from sidecar.kong_local.profiles import Profile

Body = dict[str, Any]
Errors = dict[str, Any]

EXPECTED_INT = "expected an integer"
REQUIRED = "required field missing"
UNKNOWN = "unknown field"

HEALTHCHECKS_DEFAULT: Body = {
    "active": {
        "type": "http",
        "timeout": 1,
        "concurrency": 10,
        "http_path": "/",
        "https_sni": None,
        "https_verify_certificate": True,
        "headers": None,  # 3.0+ only, dropped when rendering 2.x
        "healthy": {"interval": 0, "http_statuses": [200, 302], "successes": 0},
        "unhealthy": {
            "interval": 0,
            "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505],
            "tcp_failures": 0,
            "timeouts": 0,
            "http_failures": 0,
        },
    },
    "passive": {
        "type": "http",
        "healthy": {
            "http_statuses": [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, *range(300, 309)],
            "successes": 0,
        },
        "unhealthy": {
            "http_statuses": [429, 500, 503],
            "tcp_failures": 0,
            "timeouts": 0,
            "http_failures": 0,
        },
    },
    "threshold": 0,
}

UPSTREAM_DEFAULTS_3X: Body = {
    "algorithm": "round-robin",
    "hash_on": "none",
    "hash_fallback": "none",
    "hash_on_header": None,
    "hash_fallback_header": None,
    "hash_on_cookie": None,
    "hash_on_cookie_path": "/",
    "hash_on_query_arg": None,
    "hash_fallback_query_arg": None,
    "hash_on_uri_capture": None,
    "hash_fallback_uri_capture": None,
    "slots": 10000,
    "tags": None,
    "host_header": None,
    "client_certificate": None,
    "use_srv_name": False,
}
FIELDS_3X_ONLY = (
    "hash_on_query_arg",
    "hash_fallback_query_arg",
    "hash_on_uri_capture",
    "hash_fallback_uri_capture",
    "use_srv_name",
)


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


def tags_and_id_errors(body: Body, profile: Profile) -> dict[str, Any]:
    """What every entity's ``tags`` (``typedefs.tags``) and ``id`` (``typedefs.uuid``) are
    refused for (``kong/db/schema/typedefs.lua``), by field."""
    errors: dict[str, Any] = {}
    if "tags" in body:
        _, problem = validate_tags(body["tags"], profile)
        if problem:
            errors["tags"] = problem
    if "id" in body and not (isinstance(body["id"], str) and is_uuid(body["id"])):
        errors["id"] = "expected a valid UUID"
    return errors


def find_by_endpoint_key(
    rows: Mapping[str, Body], key: str, endpoint_key: str | None
) -> Body | None:
    """The entity a path segment names (``kong/api/endpoints.lua``, ``select_entity``): a
    UUID is its id, anything else the schema's ``endpoint_key`` (``name`` for upstreams,
    services and routes, ``username`` for consumers, ``instance_name`` for 3.x plugins; None:
    the entity has none, only ids name it)."""
    if is_uuid(key):
        return rows.get(key.lower())
    if endpoint_key is None:
        return None
    return next((r for r in rows.values() if r.get(endpoint_key) == key), None)


# ---------------------------------------------------------------- primitives


def coerce_int(value: Any, from_form: bool) -> tuple[int | None, str | None]:
    if isinstance(value, bool):
        return None, EXPECTED_INT
    if isinstance(value, int):
        return value, None
    if isinstance(value, float) and value.is_integer():  # cjson cannot tell 2.0 from 2
        return int(value), None
    if from_form and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value), None
    return None, EXPECTED_INT


def _tag_ok(tag: str, allow_space: bool) -> bool:
    if not tag:
        return False
    for ch in tag:
        code = ord(ch)
        if code > 127:
            continue  # "or valid utf-8 sequences"
        if ch in ",/":
            return False
        if code == 0x20 and allow_space:
            continue
        if not 0x21 <= code <= 0x7E:
            return False
    return True


def validate_tags(value: Any, profile: Profile) -> tuple[list[str] | None, Any]:
    """typedefs.tags: a set of strings without ``,`` and ``/`` (messages as recorded)."""
    if value is None:
        return None, None
    if isinstance(value, str):
        value = [value]  # a single form field
    if not isinstance(value, list):
        return None, "expected a set"
    problems: list[str | None] = []
    for tag in value:
        if not isinstance(tag, str):
            problems.append("expected a string")
        elif not _tag_ok(tag, profile.tag_allows_space):
            problems.append(
                f"invalid tag '{tag}': expected printable ascii (except `,` and `/`) "
                "or valid utf-8 sequences"
            )
        else:
            problems.append(None)
    while problems and problems[-1] is None:
        problems.pop()
    if problems:
        return None, problems
    return list(value), None


# ---------------------------------------------------------------- targets


def target_fields(profile: Profile) -> set[str]:
    fields = {"id", "target", "weight", "tags", "upstream", "created_at"}
    if profile.has_updated_at:
        fields.add("updated_at")
    if profile.konnect:
        fields.add("failover")
    return fields


def validate_target(body: Body, profile: Profile, *, partial: bool, from_form: bool) -> Body:
    """Clean target fields from a request body; raises nothing, returns ``{"errors": …}`` on
    failure so the caller decides how to report (Kong Admin vs Konnect)."""
    errors: Errors = {}
    clean: Body = {}
    allowed = target_fields(profile)
    for key in body:
        if key not in allowed:
            errors[key] = UNKNOWN
    if "target" in body:
        raw = body["target"]
        if not isinstance(raw, str):
            errors["target"] = "expected a string"
        elif normalize_ip(raw) is None:
            errors["target"] = "Invalid target; not a valid hostname or ip address"
        else:
            clean["target"] = raw
    elif not partial:
        errors["target"] = REQUIRED
    if "weight" in body:
        if body["weight"] is None:
            errors["weight"] = REQUIRED
        else:
            weight, err = coerce_int(body["weight"], from_form)
            if err:
                errors["weight"] = err
            elif not 0 <= weight <= 65535:  # type: ignore[operator]
                errors["weight"] = "value should be between 0 and 65535"
            else:
                clean["weight"] = weight
    if "tags" in body:
        tags, err = validate_tags(body["tags"], profile)
        if err:
            errors["tags"] = err
        else:
            clean["tags"] = tags
    if "id" in body:
        if isinstance(body["id"], str) and is_uuid(body["id"]):
            clean["id"] = body["id"]
        else:
            errors["id"] = "expected a valid UUID"
    if "failover" in body and "failover" in allowed:
        if isinstance(body["failover"], bool):
            clean["failover"] = body["failover"]
        else:
            errors["failover"] = "expected a boolean"
    if errors:
        raise schema_violation(errors)
    return clean


def render_target(rec: Body, profile: Profile) -> Body:
    out = {
        "id": rec["id"],
        "target": rec["target"],
        "weight": rec["weight"],
        "tags": copy.copy(rec["tags"]),
        "upstream": {"id": rec["upstream_id"]},
        "created_at": rec["created_at"],
    }
    if profile.has_updated_at:
        out["updated_at"] = rec["updated_at"]
    if profile.konnect:
        out["failover"] = rec.get("failover", False)
    return out


# ---------------------------------------------------------------- upstreams


def upstream_fields(profile: Profile) -> set[str]:
    fields = {"id", "name", "healthchecks", "created_at", *UPSTREAM_DEFAULTS_3X}
    if not profile.is_3x:
        fields -= set(FIELDS_3X_ONLY)
    if profile.has_updated_at:
        fields.add("updated_at")
    return fields


def _validate_name(name: Any) -> str | None:
    """upstreams.lua ``validate_name``."""
    if not isinstance(name, str):
        return "expected a string"
    p = normalize_ip(name)
    if p is None:
        return f"Invalid name ('{name}'); must be a valid hostname"
    if p.type != "name":
        return f"Invalid name ('{name}'); no ip addresses allowed"
    if p.port is not None:
        return f"Invalid name ('{name}'); no port allowed"
    return None


def _header_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected a string"
    if not re.fullmatch(r"[a-zA-Z0-9\-_]+", value):
        return f"bad header name '{value}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    return None


def _deep_merge(base: Body, patch: Body) -> Body:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _field_errors(body: Body, profile: Profile, from_form: bool) -> tuple[Body, Errors]:
    errors: Errors = {}
    clean: Body = {}
    allowed = upstream_fields(profile)
    for key, value in body.items():
        if key not in allowed:
            errors[key] = UNKNOWN
            continue
        err: Any = None
        if key == "name":
            err = _validate_name(value)
        elif key == "algorithm":
            if value not in profile.algorithms:
                err = f"expected one of: {', '.join(profile.algorithms)}"
        elif key in ("hash_on", "hash_fallback"):
            if value not in profile.hash_on_values:
                err = f"expected one of: {', '.join(profile.hash_on_values)}"
        elif key in ("hash_on_header", "hash_fallback_header", "hash_on_cookie"):
            err = None if value is None else _header_name(value)
        elif key == "slots":
            number, err = coerce_int(value, from_form)
            if not err and not 10 <= number <= 65536:  # type: ignore[operator]
                err = "value should be between 10 and 65536"
            value = number
        elif key == "tags":
            value, err = validate_tags(value, profile)
        elif key == "healthchecks":
            if not isinstance(value, dict):
                err = "expected a record"
        elif key == "use_srv_name":
            if from_form and value in ("true", "false"):
                value = value == "true"
            if not isinstance(value, bool):
                err = "expected a boolean"
        elif key == "id":
            if not (isinstance(value, str) and is_uuid(value)):
                err = "expected a valid UUID"
        elif key in ("created_at", "updated_at"):
            value, err = coerce_int(value, from_form)
        elif value is not None and not isinstance(value, str | dict):
            err = "expected a string"
        if err:
            errors[key] = err
        else:
            clean[key] = value
    return clean, errors


def _apply_shorthands(clean: Body) -> Body:
    """upstreams.lua shorthands: ``hash_on`` other than none forces consistent-hashing, none
    forces round-robin; least-connections/latency clear hash_on (it then reads "none", as the
    recordings show after PATCH algorithm=least-connections)."""
    out = dict(clean)
    if out.get("algorithm") in ("least-connections", "latency"):
        out["hash_on"] = "none"
    if "hash_on" in clean:
        out["algorithm"] = "round-robin" if clean["hash_on"] == "none" else "consistent-hashing"
    return out


def _entity_checks(entity: Body, profile: Profile) -> Errors:
    errors: Errors = {}
    entity_errs: list[str] = []

    def conditional(if_field: str, then_field: str, message: str) -> None:
        entity_errs.append(f"failed conditional validation given value of field '{if_field}'")
        errors.setdefault(then_field, message)

    hash_on, fallback = entity.get("hash_on"), entity.get("hash_fallback")
    requirements = [("header", "header"), ("cookie", "cookie")]
    if profile.is_3x:
        requirements += [("query_arg", "query_arg"), ("uri_capture", "uri_capture")]
    for value, suffix in requirements:
        if hash_on == value and entity.get(f"hash_on_{suffix}") is None:
            conditional("hash_on", f"hash_on_{suffix}", REQUIRED)
    for value, suffix in requirements:
        field = "hash_on_cookie" if suffix == "cookie" else f"hash_fallback_{suffix}"
        if fallback == value and entity.get(field) is None:
            conditional("hash_fallback", field, REQUIRED)
    if hash_on in ("none", "cookie") and fallback != "none":
        conditional("hash_on", "hash_fallback", "expected one of: none")
    elif hash_on in ("consumer", "ip") and fallback == hash_on:
        allowed = [v for v in ("none", "consumer", "ip", "header", "cookie") if v != hash_on]
        conditional("hash_on", "hash_fallback", f"expected one of: {', '.join(allowed)}")
    if (
        entity.get("hash_on_header") is not None
        and entity.get("hash_on_header") == entity.get("hash_fallback_header")
        and hash_on == "header"
        and fallback == "header"
    ):
        entity_errs.append(
            "values of these fields must be distinct: 'hash_on_header', 'hash_fallback_header'"
        )
    if entity_errs:
        errors["@entity"] = entity_errs
    return errors


def build_upstream(body: Body, profile: Profile, *, base: Body | None, from_form: bool) -> Body:
    """Validate ``body`` on top of ``base`` (an existing record for PATCH, None for POST/PUT).

    Returns the full new field set (without id/timestamps); raises the recorded 400 bodies.
    """
    clean, errors = _field_errors(body, profile, from_form)
    if errors:
        raise schema_violation(errors)
    clean = _apply_shorthands(clean)
    if base is None:
        entity = dict(UPSTREAM_DEFAULTS_3X)
        entity["healthchecks"] = copy.deepcopy(HEALTHCHECKS_DEFAULT)
        if "name" not in clean:
            raise schema_violation({"name": REQUIRED})
    else:
        entity = copy.deepcopy(base)
    for key, value in clean.items():
        if key == "healthchecks":
            entity[key] = _deep_merge(entity["healthchecks"], value)
        elif key not in ("id", "created_at", "updated_at"):
            entity[key] = value
    errors = _entity_checks(entity, profile)
    if errors:
        raise schema_violation(errors)
    return entity


def healthchecks_enabled(upstream: Body) -> bool:
    """healthcheckers.lua ``is_upstream_using_healthcheck``: any active interval or passive
    threshold above zero."""
    hc = upstream["healthchecks"]
    active = hc["active"]
    passive = hc["passive"]
    return bool(
        active["healthy"]["interval"]
        or active["unhealthy"]["interval"]
        or passive["healthy"]["successes"]
        or any(passive["unhealthy"][k] for k in ("tcp_failures", "timeouts", "http_failures"))
    )


def render_upstream(rec: Body, profile: Profile) -> Body:
    out: Body = {"id": rec["id"], "name": rec["name"], "created_at": rec["created_at"]}
    for key in UPSTREAM_DEFAULTS_3X:
        if profile.is_3x or key not in FIELDS_3X_ONLY:
            out[key] = copy.deepcopy(rec[key])
    hc = copy.deepcopy(rec["healthchecks"])
    if not profile.is_3x:
        hc["active"].pop("headers", None)
    out["healthchecks"] = hc
    if profile.has_updated_at:
        out["updated_at"] = rec["updated_at"]
    return out
