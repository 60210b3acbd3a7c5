"""Service and plugin entities for the local server: validation, defaults and rendering.

Sources (Kong/kong): ``kong/db/schema/entities/services.lua`` (fields, defaults, ``url``
shorthand), ``kong/db/schema/entities/plugins.lua`` (``cache_key = {name, route, service,
consumer}``, ``subschema_error`` "plugin '%s' not enabled; add it to the 'plugins'
configuration property"; ``instance_name`` and ``updated_at`` are 3.x fields),
``kong/plugins/http-log/schema.lua`` (2.8: ``retry_count`` 10, ``queue_size`` 1,
``flush_timeout`` 2, headers ``typedefs.headers`` = map of name -> array of strings; 3.x:
those three are deprecated with no default, headers map a name to one string, batching is
``queue`` = ``kong/tools/queue_schema.lua``), ``kong/plugins/prometheus/schema.lua`` and
``kong/db/schema/typedefs.lua``. Only the bundled plugins the pack uses are modelled
(http-log, prometheus); any other name is refused as Kong refuses a plugin that is not
enabled. Messages follow ``kong/db/schema/init.lua``; they are not replay-tested against a
recording (none exists for these entities).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sidecar.kong_local import serverless
from sidecar.kong_local.errors import schema_violation
from sidecar.kong_local.profiles import Profile
from sidecar.kong_local.schemas import REQUIRED, UNKNOWN, Body, is_uuid, tags_and_id_errors

Errors = dict[str, Any]
NOT_ENABLED = "plugin '{}' not enabled; add it to the 'plugins' configuration property"
PROTOCOLS_2X = ("grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp")
PROTOCOLS_3X = (*PROTOCOLS_2X, "ws", "wss")
DEFAULT_PLUGIN_PROTOCOLS = ["grpc", "grpcs", "http", "https"]  # typedefs.protocols default
HEADER_NAME = re.compile(r"^[a-zA-Z0-9\-_]+$")


# ---------------------------------------------------------------- a tiny schema language


@dataclass(frozen=True)
class Field:
    kind: str  # string|integer|number|boolean|record|map_string|map_array|url|set|array
    default: Any = None
    required: bool = False
    one_of: tuple[Any, ...] = ()
    between: tuple[float, float] | None = None
    fields: dict[str, Field] | None = None  # record
    check: Callable[[Any], str | None] | None = None  # extra check on keys/values


def _type_error(spec: Field, value: Any) -> str | None:
    kind = spec.kind
    if kind in ("string", "url"):
        return None if isinstance(value, str) else "expected a string"
    if kind == "boolean":
        return None if isinstance(value, bool) else "expected a boolean"
    if kind == "integer":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok and float(value).is_integer() else "expected an integer"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "expected a number"
    if kind == "record":
        return None if isinstance(value, dict) else "expected a record"
    if kind in ("map_string", "map_array"):
        return None if isinstance(value, dict) else "expected a map"
    if kind == "set":
        return None if isinstance(value, list) else "expected a set"
    if kind == "array":
        return None if isinstance(value, list) else "expected an array"
    raise AssertionError(kind)


def _check_value(spec: Field, value: Any) -> Any:
    """An error (str or nested dict) for one present, non-null value, or None."""
    error = _type_error(spec, value)
    if error:
        return error
    if spec.kind == "record":
        assert spec.fields is not None
        return validate_record(spec.fields, value) or None
    if spec.one_of and value not in spec.one_of:
        return f"expected one of: {', '.join(str(v) for v in spec.one_of)}"
    if spec.between is not None and not spec.between[0] <= value <= spec.between[1]:
        low, high = (int(b) if float(b).is_integer() else b for b in spec.between)
        return f"value should be between {low} and {high}"
    if spec.kind == "url":
        parts = urlsplit(value)
        if not parts.scheme:
            return "missing scheme in url"  # wording of typedefs.url unconfirmed
        if not parts.hostname:
            return "missing host in url"
    if spec.kind in ("map_string", "map_array"):
        errors: Errors = {}
        for key, item in value.items():
            problem = spec.check(key) if spec.check else None
            if problem is None and spec.kind == "map_string" and not isinstance(item, str):
                problem = "expected a string"
            if problem is None and spec.kind == "map_array":
                if not isinstance(item, list):
                    problem = "expected an array"
                elif not all(isinstance(v, str) for v in item):
                    problem = "expected a string"
            if problem:
                errors[key] = problem
        return errors or None
    if spec.kind == "set" and spec.check is not None:
        problems = [spec.check(v) for v in value]
        return next((p for p in problems if p), None)
    if spec.kind == "array" and spec.check is not None:
        # Kong reports an array's element errors at their positions (nulls elsewhere).
        positioned = [spec.check(v) for v in value]
        return positioned if any(positioned) else None
    return None


def validate_record(fields: dict[str, Field], body: Body) -> Errors:
    errors: Errors = {}
    for key in body:
        if key not in fields:
            errors[key] = UNKNOWN
    for key, spec in fields.items():
        value = body.get(key)
        if value is None:
            if spec.required:
                errors[key] = REQUIRED
            continue
        problem = _check_value(spec, value)
        if problem:
            errors[key] = problem
    return errors


def with_defaults(fields: dict[str, Field], body: Body) -> Body:
    """Every field present: given values, defaults (records recursively), else null."""
    out: Body = {}
    for key, spec in fields.items():
        value = body.get(key)
        if spec.kind == "record":
            assert spec.fields is not None
            out[key] = with_defaults(spec.fields, value if isinstance(value, dict) else {})
        elif value is None:
            out[key] = copy.deepcopy(spec.default)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_patch(fields: dict[str, Field], current: Body, patch: Body) -> Body:
    """PATCH: records merge field by field; maps, arrays and scalars are replaced."""
    out = copy.deepcopy(current)
    for key, value in patch.items():
        spec = fields.get(key)
        if spec is not None and spec.kind == "record" and isinstance(value, dict):
            assert spec.fields is not None
            out[key] = merge_patch(spec.fields, out.get(key) or {}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---------------------------------------------------------------- plugin configs


def _header_key(forbidden: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(name: Any) -> str | None:
        if not HEADER_NAME.match(str(name)):
            return f"bad header name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        if str(name).lower() in forbidden:
            return f"cannot contain '{_canonical(str(name))}' header"
        return None

    return check


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _queue_fields(profile: Profile) -> dict[str, Field]:
    fields = {
        "max_batch_size": Field("integer", 1, between=(1, 1_000_000)),
        "max_coalescing_delay": Field("number", 1, between=(0, 3600)),
        "max_entries": Field("integer", 10000, between=(1, 1_000_000)),
        "max_bytes": Field("integer"),
        "max_retry_time": Field("number", 60),
        "initial_retry_delay": Field("number", 0.01, between=(0.001, 1_000_000)),
        "max_retry_delay": Field("number", 60, between=(0.001, 1_000_000)),
    }
    if profile.major_minor >= (3, 8):  # queue.concurrency_limit arrived in 3.8
        fields["concurrency_limit"] = Field("integer", 1, one_of=(-1, 1))
    return fields


def http_log_fields(profile: Profile) -> dict[str, Field]:
    headers_check = _header_key(("host", "content-length", "content-type"))
    fields = {
        "http_endpoint": Field("url", required=True),
        "method": Field("string", "POST", one_of=("POST", "PUT", "PATCH")),
        "content_type": Field("string", "application/json", one_of=("application/json",)),
        "timeout": Field("number", 10000),
        "keepalive": Field("number", 60000),
    }
    if profile.is_3x:
        fields["content_type"] = Field(
            "string",
            "application/json",
            one_of=("application/json", "application/json; charset=utf-8"),
        )
        fields.update(
            {
                "retry_count": Field("integer"),  # deprecated: no default, ignored
                "queue_size": Field("integer"),
                "flush_timeout": Field("number"),
                "headers": Field("map_string", check=headers_check),
                "queue": Field("record", fields=_queue_fields(profile)),
            }
        )
    else:
        fields.update(
            {
                "retry_count": Field("integer", 10),
                "queue_size": Field("integer", 1),
                "flush_timeout": Field("number", 2),
                "headers": Field("map_array", check=headers_check),
            }
        )
    fields["custom_fields_by_lua"] = Field("map_string")
    return fields


def prometheus_fields(profile: Profile) -> dict[str, Field]:
    fields = {"per_consumer": Field("boolean", False)}
    if profile.is_3x:  # the metric groups became opt-in in 3.0
        for name in (
            "status_code_metrics",
            "latency_metrics",
            "bandwidth_metrics",
            "upstream_health_metrics",
        ):
            fields[name] = Field("boolean", False)
    if profile.major_minor >= (3, 8):
        fields["ai_metrics"] = Field("boolean", False)
    return fields


def post_function_fields(profile: Profile) -> dict[str, Field]:
    """``post-function``: arrays of Lua, compiled by LuaJIT (``serverless.py`` cites Kong)."""
    check = serverless.function_error
    return {phase: Field("array", [], check=check) for phase in serverless.phase_fields(profile)}


PLUGIN_CONFIGS: dict[str, Callable[[Profile], dict[str, Field]]] = {
    "http-log": http_log_fields,
    "prometheus": prometheus_fields,
    serverless.PLUGIN_NAME: post_function_fields,
}
# Entity checks of a plugin's schema, over its config with defaults (``@entity`` errors).
ENTITY_CHECKS: dict[str, Callable[[Body, Profile], list[str]]] = {
    serverless.PLUGIN_NAME: serverless.entity_errors,
}


def plugin_fields(profile: Profile) -> set[str]:
    fields = {"id", "name", "created_at", "route", "service", "consumer", "config"}
    fields |= {"protocols", "enabled", "tags"}
    if profile.is_3x:
        fields |= {"instance_name", "updated_at"}
    return fields


def _protocol_check(profile: Profile) -> Callable[[Any], str | None]:
    allowed = PROTOCOLS_3X if profile.is_3x else PROTOCOLS_2X

    def check(value: Any) -> str | None:
        if value not in allowed:
            return f"expected one of: {', '.join(allowed)}"
        return None

    return check


def _foreign(value: Any) -> str | dict[str, str] | None:
    if not isinstance(value, dict):
        return "expected a record"
    if set(value) - {"id"}:
        return {k: UNKNOWN for k in value if k != "id"}
    if not isinstance(value.get("id"), str) or not is_uuid(value["id"]):
        return {"id": "expected a valid UUID"}
    return None


def validate_plugin(
    body: Body, profile: Profile, *, partial: bool, disabled: frozenset[str] = frozenset()
) -> Body:
    """Clean top-level fields (config is checked later, against the plugin's schema).
    ``disabled``: bundled plugins this node was started without (not in ``plugins``)."""
    allowed = plugin_fields(profile)
    errors: Errors = {key: UNKNOWN for key in body if key not in allowed}
    name = body.get("name")
    if name is None and not partial:
        errors["name"] = REQUIRED
    elif name is not None and not isinstance(name, str):
        errors["name"] = "expected a string"
    elif name is not None and (name not in PLUGIN_CONFIGS or name in disabled):
        errors["name"] = NOT_ENABLED.format(name)
    elif name == serverless.PLUGIN_NAME and body.get("consumer") is not None:
        errors["consumer"] = "value must be null"  # typedefs.no_consumer (eq = null)
    if "enabled" in body and not isinstance(body["enabled"], bool):
        errors["enabled"] = "expected a boolean"
    if body.get("protocols") is not None:
        problem = _check_value(Field("set", check=_protocol_check(profile)), body["protocols"])
        if problem:
            errors["protocols"] = problem
    errors.update(tags_and_id_errors(body, profile))
    for key in ("service", "route", "consumer"):
        if body.get(key) is not None and key not in errors:
            problem = _foreign(body[key])
            if problem:
                errors[key] = problem
    if body.get("instance_name") is not None and not isinstance(body["instance_name"], str):
        errors["instance_name"] = "expected a string"
    if "config" in body and body["config"] is not None and not isinstance(body["config"], dict):
        errors["config"] = "expected a record"
    if errors:
        raise schema_violation(errors)
    return body


def build_plugin_config(
    name: str, config: Body, profile: Profile, *, updating: bool = False
) -> Body:
    """``updating``: a PATCH, whose ``at least one of`` messages Kong prefixes with "when
    updating, " (``Schema:validate_update``, ``kong/db/schema/init.lua``)."""
    fields = PLUGIN_CONFIGS[name](profile)
    errors = validate_record(fields, config)
    if errors:
        raise schema_violation({"config": errors})
    full = with_defaults(fields, config)
    entity = ENTITY_CHECKS[name](full, profile) if name in ENTITY_CHECKS else []
    if entity:
        raise schema_violation({"@entity": [when_updating(e, updating) for e in entity]})
    return full


def when_updating(message: str, updating: bool) -> str:
    """``validate_update`` rewords AT_LEAST_ONE_OF for the length of a PATCH."""
    if updating and message.startswith("at least one of these fields must be non-empty"):
        return f"when updating, {message}"
    return message


def render_plugin(rec: Body, profile: Profile) -> Body:
    return {k: copy.deepcopy(rec.get(k)) for k in sorted(plugin_fields(profile))}


# ---------------------------------------------------------------- services

SERVICE_DEFAULTS: Body = {
    "retries": 5,
    "protocol": "http",
    "port": 80,
    "path": None,
    "connect_timeout": 60000,
    "write_timeout": 60000,
    "read_timeout": 60000,
    "tags": None,
    "client_certificate": None,
    "tls_verify": None,
    "tls_verify_depth": None,
    "ca_certificates": None,
    "enabled": True,
}
_TIMEOUT = (1, 2147483646)


def service_fields(profile: Profile) -> dict[str, Field]:
    protocols = PROTOCOLS_3X if profile.is_3x else PROTOCOLS_2X
    return {
        "name": Field("string"),
        "retries": Field("integer", between=(0, 32767)),
        "protocol": Field("string", one_of=protocols),
        "host": Field("string"),
        "port": Field("integer", between=(0, 65535)),
        "path": Field("string"),
        "connect_timeout": Field("integer", between=_TIMEOUT),
        "write_timeout": Field("integer", between=_TIMEOUT),
        "read_timeout": Field("integer", between=_TIMEOUT),
        "tls_verify": Field("boolean"),
        "tls_verify_depth": Field("integer", between=(0, 64)),
        "enabled": Field("boolean"),
    }


def _url_shorthand(url: Any) -> tuple[Body, Errors]:
    if not isinstance(url, str):
        return {}, {"url": "expected a string"}
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return {}, {"url": "missing host in url" if parts.scheme else "missing scheme in url"}
    out: Body = {"protocol": parts.scheme, "host": parts.hostname}
    out["port"] = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.path:
        out["path"] = parts.path
    return out, {}


def build_service(body: Body, profile: Profile, *, base: Body | None) -> Body:
    """A full service record from a POST/PUT (``base`` None) or a PATCH onto ``base``."""
    body = dict(body)
    errors: Errors = {}
    if "url" in body:
        expanded, errors = _url_shorthand(body.pop("url"))
        body.update(expanded)
    fields = service_fields(profile)
    passthrough = {"id", "tags", "client_certificate", "ca_certificates"}
    for key in body:
        if key not in fields and key not in passthrough:
            errors[key] = UNKNOWN
    errors.update({k: v for k, v in validate_record(fields, body).items() if v != UNKNOWN})
    errors.update(tags_and_id_errors(body, profile))
    merged = {**(base or SERVICE_DEFAULTS), **{k: v for k, v in body.items() if k != "id"}}
    if merged.get("host") is None:
        errors["host"] = REQUIRED
    if errors:
        raise schema_violation(errors)
    return {**SERVICE_DEFAULTS, **merged}


SERVICE_KEYS = ("id", "name", "created_at", "updated_at", "host", *SERVICE_DEFAULTS)


def render_service(rec: Body) -> Body:
    return {k: copy.deepcopy(rec.get(k)) for k in sorted(SERVICE_KEYS)}


# ---------------------------------------------------------------- errors


def new_id() -> str:
    return str(uuid.uuid4())
