"""Route entities for the local server: the fields the pack's checks read, validated like Kong.

Sources (Kong/kong at 2.8.5 and 3.4.2): ``kong/db/schema/entities/routes.lua`` (traditional
router fields and defaults: ``protocols`` {"http", "https"}, ``https_redirect_status_code``
426, ``regex_priority`` 0, ``strip_path`` true, ``path_handling`` "v0", ``preserve_host``
false, ``request_buffering``/``response_buffering`` true; ``name`` is ``typedefs.utf8_name``,
unique; ``service`` a foreign key without ``on_delete``, so a service with routes cannot be
deleted), ``kong/db/schema/entities/routes_subschemas.lua`` (an http(s) route must set one of
``methods``, ``hosts``, ``headers``, ``paths``), ``kong/db/errors.lua`` (the "an existing
'routes' entity references this 'services' entity" foreign-key error). Only the traditional
router is modelled (no ``expression``); ``snis``/``sources``/``destinations`` are accepted
as given, not checked.
"""

from __future__ import annotations

import copy
from typing import Any

from sidecar.kong_local.errors import ApiError, schema_violation
from sidecar.kong_local.plugin_schemas import PROTOCOLS_2X, PROTOCOLS_3X, Field, validate_record
from sidecar.kong_local.profiles import Profile
from sidecar.kong_local.schemas import Body, tags_and_id_errors

ROUTE_DEFAULTS: Body = {
    "name": None,
    "protocols": ["http", "https"],
    "methods": None,
    "hosts": None,
    "paths": None,
    "headers": None,
    "snis": None,
    "sources": None,
    "destinations": None,
    "https_redirect_status_code": 426,
    "regex_priority": 0,
    "strip_path": True,
    "path_handling": "v0",
    "preserve_host": False,
    "request_buffering": True,
    "response_buffering": True,
    "tags": None,
    "service": None,
}
ROUTE_KEYS = ("id", "created_at", "updated_at", *ROUTE_DEFAULTS)
MATCHERS = ("methods", "hosts", "headers", "paths")


def route_fields(profile: Profile) -> dict[str, Field]:
    protocols = PROTOCOLS_3X if profile.is_3x else PROTOCOLS_2X
    return {
        "name": Field("string"),
        "protocols": Field("set", check=lambda p: None if p in protocols else "invalid value"),
        "methods": Field("set"),
        "hosts": Field("set"),
        "paths": Field("set"),
        "headers": Field("map_array"),
        "snis": Field("set"),
        "sources": Field("set"),
        "destinations": Field("set"),
        "https_redirect_status_code": Field("integer", one_of=(426, 301, 302, 307, 308)),
        "regex_priority": Field("integer"),
        "strip_path": Field("boolean"),
        "path_handling": Field("string", one_of=("v0", "v1")),
        "preserve_host": Field("boolean"),
        "request_buffering": Field("boolean"),
        "response_buffering": Field("boolean"),
    }


def build_route(body: Body, profile: Profile, *, base: Body | None) -> Body:
    """A full route record (``service`` and ``id`` are the caller's) from a POST, or a PATCH
    onto ``base``."""
    fields = route_fields(profile)
    given = {k: v for k, v in body.items() if k not in ("id", "service", "tags")}
    errors: dict[str, Any] = {**validate_record(fields, given), **tags_and_id_errors(body, profile)}
    service = body.get("service")
    if service is not None and not (
        isinstance(service, dict) and isinstance(service.get("id"), str)
    ):
        errors["service"] = "expected a record"
    merged = {**ROUTE_DEFAULTS, **(base or {}), **{k: v for k, v in body.items() if k != "id"}}
    protocols = merged.get("protocols") or []
    if not errors and any(p in ("http", "https") for p in protocols):
        which = "https" if "https" in protocols else "http"
        matchers = (*MATCHERS, "snis") if which == "https" else MATCHERS
        if not any(merged.get(m) for m in matchers):
            listed = ", ".join(f"'{m}'" for m in matchers)
            errors["@entity"] = [f"must set one of {listed} when 'protocols' is '{which}'"]
    if errors:
        raise schema_violation(errors)
    return merged


def render_route(rec: Body) -> Body:
    return {k: copy.deepcopy(rec.get(k)) for k in sorted(ROUTE_KEYS)}


def referenced_by_routes() -> ApiError:
    """Deleting a service that routes still point at (``kong/db/errors.lua``, code 3)."""
    return ApiError(
        400,
        {
            "code": 3,
            "name": "foreign key violation",
            "message": "an existing 'routes' entity references this 'services' entity",
            "fields": {"@referenced_by": "routes"},
        },
    )
