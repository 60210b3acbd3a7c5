"""Bearer-token authentication and per-token upstream allow-lists.

Tokens are compared with ``hmac.compare_digest`` against every configured token
(no early exit), so timing says nothing about which prefix matched.
"""

from __future__ import annotations

import hmac

from flask import Request, current_app, g

from sidecar.api.context import this_request
from sidecar.core.names import is_upstream_name
from sidecar.errors import ApiError
from sidecar.settings import ApiToken

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _match(presented: str, tokens: tuple[ApiToken, ...]) -> ApiToken | None:
    found = None
    encoded = presented.encode()
    for token in tokens:
        if hmac.compare_digest(encoded, token.token.encode()):
            found = token
    return found


def authenticate(required_role: str | None = None) -> ApiToken:
    """Resolve the caller from ``Authorization: Bearer``; 401 without a valid token, 403
    when the token lacks the role or may not touch the upstream in the URL."""
    return _authenticate(this_request(), required_role)


def _authenticate(request: Request, required_role: str | None = None) -> ApiToken:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(
            401,
            "unauthenticated",
            "send an API token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="kong-canary"'},
        )
    caller = _match(presented.strip(), current_app.extensions["kong_canary"].settings.tokens)
    if caller is None:
        raise ApiError(
            401,
            "unauthenticated",
            "the API token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="kong-canary", error="invalid_token"'},
        )
    role = required_role or ("read" if request.method in READ_METHODS else "write")
    if not caller.can(role):
        raise ApiError(
            403,
            "forbidden",
            f"token {caller.name!r} has role {caller.role!r}; this call needs {role!r}",
        )
    upstream = (request.view_args or {}).get("upstream")
    if upstream is not None and not caller.allows(upstream):
        raise ApiError(
            403,
            "upstream_not_allowed",
            f"token {caller.name!r} may only touch upstreams matching "
            f"{', '.join(caller.upstreams)}",
            field="upstream",
        )
    g.caller = caller
    return caller


def check_upstream_name(name: str) -> str:
    """Kong upstream names are hostnames (ids are UUIDs); anything else never reaches Kong."""
    if not is_upstream_name(name):
        raise ApiError(
            422,
            "invalid_upstream",
            "upstream must be a Kong upstream name or id (letters, digits, '.', '-', '_')",
            field="upstream",
        )
    return name


def require_token() -> None:
    """``before_request`` of the API blueprints: the token first, so a caller without a
    valid one learns nothing else (401), then the upstream named in the URL, if any."""
    request = this_request()
    _authenticate(request)
    upstream = (request.view_args or {}).get("upstream")
    if upstream is not None:
        check_upstream_name(upstream)
