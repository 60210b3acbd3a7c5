"""Kong's error bodies (``kong/db/errors.lua``, ``kong/api/endpoints.lua``) as one exception.

Handlers raise :class:`ApiError`; the server turns it into the exact JSON Kong sends, so a
status/body pair is defined once here and nowhere else.
"""

from __future__ import annotations

from typing import Any

NOT_FOUND = {"message": "Not found"}
METHOD_NOT_ALLOWED = {"message": "Method not allowed"}
UNEXPECTED = {"message": "An unexpected error occurred"}  # kong.tools.utils _overrides[500]


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", str(status)))
        self.status = status
        self.body = body


def not_found() -> ApiError:
    return ApiError(404, dict(NOT_FOUND))


def method_not_allowed() -> ApiError:
    return ApiError(405, dict(METHOD_NOT_ALLOWED))


def cannot_parse_json() -> ApiError:
    return ApiError(400, {"message": "Cannot parse JSON body"})


def _flatten(errors: dict[str, Any]) -> list[str]:
    """Message parts in Kong's order: entity checks first, then fields by name.

    Nested lists become ``field.i`` (1-based, Lua style), nested records ``field.sub``.
    """
    parts: list[str] = list(errors.get("@entity", []))

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, str):
            parts.append(f"{prefix}: {value}")
        elif isinstance(value, list):
            for i, item in enumerate(value, start=1):
                if item is not None:
                    walk(f"{prefix}.{i}", item)
        elif isinstance(value, dict):
            for key in sorted(value):
                walk(f"{prefix}.{key}", value[key])

    for key in sorted(k for k in errors if k != "@entity"):
        walk(key, errors[key])
    return parts


def schema_violation(errors: dict[str, Any]) -> ApiError:
    parts = _flatten(errors)
    head = "schema violation" if len(parts) == 1 else f"{len(parts)} schema violations"
    message = f"{head} ({'; '.join(parts)})"
    return ApiError(
        400, {"code": 2, "name": "schema violation", "message": message, "fields": errors}
    )


def _lua_literal(value: Any) -> str:
    """A key as ``kong/db/errors.lua`` prints it (``pl.pretty``-like, nulls as ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        inner = ",".join(f"{k}={_lua_literal(value[k])}" for k in sorted(value))
        return "{" + inner + "}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def unique_violation(fields: dict[str, Any]) -> ApiError:
    """``kong/db/errors.lua`` UNIQUE_VIOLATION (code 5, 409 in ``kong/api/endpoints.lua``)."""
    message = f"UNIQUE violation detected on '{_lua_literal(fields)}'"
    return ApiError(
        409,
        {"code": 5, "name": "unique constraint violation", "message": message, "fields": fields},
    )


def primary_key_violation(primary_key: dict[str, Any]) -> ApiError:
    """An insert whose id is taken: ``kong/db/strategies/postgres/init.lua`` ``toerror``
    reports Postgres' primary-key conflict as ``errors:primary_key_violation`` (code 3, 400
    in ``kong/api/endpoints.lua``), 2.8.5 to 3.9.3."""
    message = f"primary key violation on key '{_lua_literal(primary_key)}'"
    return ApiError(
        400,
        {"code": 3, "name": "primary key violation", "message": message, "fields": primary_key},
    )


def foreign_key_violation(field: str, entity: str, key: dict[str, Any]) -> ApiError:
    """``kong/db/errors.lua`` FOREIGN_KEY_VIOLATION (code 4) for a missing parent."""
    return ApiError(
        400,
        {
            "code": 4,
            "name": "foreign key violation",
            "message": f"the foreign key '{_lua_literal(key)}' does not reference an existing "
            f"'{entity}' entity.",
            "fields": {field: key},
        },
    )


def invalid_size(message: str) -> ApiError:
    return ApiError(400, {"code": 9, "name": "invalid size", "message": message})


def invalid_offset(offset: str) -> ApiError:
    # errors.lua INVALID_OFFSET; wording of the message not confirmed by a recording.
    return ApiError(
        400, {"code": 7, "name": "invalid offset", "message": f"'{offset}' is not a valid offset"}
    )


def invalid_options(options: dict[str, Any]) -> ApiError:
    parts = [f"{k}: {v}" for k, v in sorted(options.items())]
    return ApiError(
        400,
        {
            "code": 11,
            "name": "invalid options",
            "message": f"invalid option ({'; '.join(parts)})",
            "options": options,
        },
    )


def operation_unsupported(verb: str, entity: str) -> ApiError:
    """``kong/db/strategies/off/init.lua``: ``cannot <verb> '<entity>' entities when not using a
    database``, verbs create / update / create or update / remove."""
    return ApiError(
        405,
        {
            "code": 12,
            "name": "operation unsupported",
            "message": f"cannot {verb} '{entity}' entities when not using a database",
        },
    )
