"""``POST /v1/kong-log``: where Kong's http-log plugin posts, during the canary window.

Kong sends the token we put in the plugin's ``headers`` (``Authorization: Bearer``, a
token of role write) and, in the same way, ``X-Kong-Canary-Upstream`` naming the upstream:
a ``?upstream=`` in ``http_endpoint`` is accepted too, but Kong's http-log builds its
request URL from scheme, host, port and path only (``send_entries``/``send_payload`` in
``kong/plugins/http-log/handler.lua``), so the header is what the plugin config uses.
Status codes: ``sidecar.gateway.ingest``.
"""

from __future__ import annotations

import re
import threading

from flask import Blueprint, Flask, current_app, jsonify, request

from sidecar.api.auth import authenticate
from sidecar.errors import ApiError
from sidecar.gateway.addresses import VariantResolver
from sidecar.gateway.ingest import GatewayIngest
from sidecar.gateway.plugin import UPSTREAM_HEADER

bp = Blueprint("kong_log", __name__, url_prefix="/v1")

EXTENSION = "kong_canary_gateway"
MAX_BODY_BYTES = 32 * 1024 * 1024  # 1,000 entries of ~2 kB each is 2 MB; leave headroom
UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_install_lock = threading.Lock()


def install(app: Flask, gateway: GatewayIngest | None = None) -> GatewayIngest:
    """Attach the per-process ingest state; tests pass one with a fake clock."""
    with _install_lock:
        existing = app.extensions.get(EXTENSION)
        if gateway is None and existing is not None:
            return existing
        if gateway is None:
            kong = app.extensions["kong_canary"].kong
            gateway = GatewayIngest(VariantResolver(kong.health))
        app.extensions[EXTENSION] = gateway
        return gateway


def _gateway() -> GatewayIngest:
    gateway = current_app.extensions.get(EXTENSION)
    return gateway if gateway is not None else install(current_app)  # type: ignore[arg-type]


def _override() -> str | None:
    name = request.args.get("upstream") or request.headers.get(UPSTREAM_HEADER)
    if name is None:
        return None
    if not UPSTREAM_NAME.match(name):
        raise ApiError(
            422,
            "invalid_upstream",
            "upstream must be a Kong upstream name (letters, digits, '.', '-', '_')",
            field="upstream",
        )
    return name


@bp.post("/kong-log")
def kong_log():  # type: ignore[no-untyped-def]
    caller = authenticate(required_role="write")
    upstream = _override()
    if upstream is not None and not caller.allows(upstream):
        raise ApiError(
            403,
            "upstream_not_allowed",
            f"token {caller.name!r} may not report on upstream {upstream!r}",
            field="upstream",
        )
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(413, "batch_too_large", f"batches are limited to {MAX_BODY_BYTES} bytes")
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:  # no Content-Length (chunked): never read past the limit
        raise ApiError(413, "batch_too_large", f"batches are limited to {MAX_BODY_BYTES} bytes")
    result = _gateway().ingest(body, upstream=upstream, allowed=caller.allows)
    return jsonify(result.as_json())
