"""``POST /v1/kong-log``: where Kong's http-log plugin posts, during the canary window.

Kong sends the token we put in the plugin's ``headers`` (``Authorization: Bearer``, a
token of role write) and, in the same way, ``X-Kong-Canary-Upstream`` naming the upstream:
a ``?upstream=`` in ``http_endpoint`` is accepted too, but Kong's http-log builds its
request URL from scheme, host, port and path only (``send_entries``/``send_payload`` in
``kong/plugins/http-log/handler.lua``), so the header is what the plugin config uses.
Status codes: ``sidecar.gateway.ingest``.

``/v1/upstreams/{u}/gateway-metrics`` opens (POST), closes (DELETE) and shows (GET) the
http-log window by hand (``sidecar.gateway.window``). With ``gateway_metrics`` on, the split,
ramp, rollback and promote paths do the same on their own; the next such change wins over a
manual one (a ramp step re-opens a window closed by hand, a rollback closes one opened).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from sidecar.api import guard
from sidecar.api.auth import authenticate, check_upstream_name
from sidecar.api.body import read_body
from sidecar.api.operations import Operation, documented, errors, json_response, operation
from sidecar.errors import ApiError, from_kong_error
from sidecar.gateway.addresses import VariantResolver
from sidecar.gateway.ingest import GatewayIngest
from sidecar.gateway.metrics import GatewayMetrics
from sidecar.gateway.plugin import UPSTREAM_HEADER
from sidecar.gateway.window import GatewayWindow, IngestConfig
from sidecar.gateway.window_check import WindowCheck
from sidecar.kong.errors import KongError
from sidecar.metrics import CONFIRMED_UPSTREAMS
from sidecar.settings import ApiToken

bp = Blueprint("kong_log", __name__, url_prefix="/v1")
audit = logging.getLogger("kong_canary.audit")

EXTENSION = "kong_canary_gateway"
WINDOW = "kong_canary_gateway_window"
WINDOW_CHECK = "kong_canary_gateway_window_check"
_install_lock = threading.Lock()


def install(app: Flask, gateway: GatewayIngest | None = None) -> GatewayIngest:
    """Attach the per-process ingest state; tests pass one with a fake clock."""
    with _install_lock:
        existing = app.extensions.get(EXTENSION)
        if gateway is None and existing is not None:
            return existing
        if gateway is None:
            runtime = app.extensions["kong_canary"]
            kong = runtime.kong
            gateway = GatewayIngest(
                VariantResolver(kong.health, upstream=kong.upstream),
                GatewayMetrics(max_routes=runtime.settings.gateway_max_routes),
            )
        app.extensions[EXTENSION] = gateway
        return gateway


def _gateway() -> GatewayIngest:
    gateway = current_app.extensions.get(EXTENSION)
    return gateway if gateway is not None else install(current_app)  # type: ignore[arg-type]


def _override() -> str | None:
    name = request.args.get("upstream") or request.headers.get(UPSTREAM_HEADER)
    if name is None:
        return None
    return check_upstream_name(name)


@bp.post("/kong-log")
@operation(
    "Ingest Kong http-log batches; counts per upstream and variant",
    description="A JSON array (batched) or one object per request. The "
    "upstream comes from each entry's service host, or the "
    "X-Kong-Canary-Upstream header / ?upstream= override.",
    request_body={"required": True, "content": {"application/json": {"schema": {}}}},
    responses={
        "200": json_response("IngestResult", "counted (bad entries are reported)"),
        "413": json_response("Error", "batch larger than kong_log_max_body_bytes (body_too_large)"),
        **errors(400, 401, 403, 404, 422, 503),
    },
)
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
    try:
        body = read_body(request, "kong_log_max_body_bytes")  # batches exceed API bodies
    except ApiError as exc:
        _gateway().metrics.reject_batch(exc.code)  # Kong drops it after its retries: count it
        raise
    result = _gateway().ingest(body, upstream=upstream, allowed=caller.allows)
    guard.record(current_app, result.result)  # type: ignore[arg-type]  # one call per batch
    return jsonify(result.as_json())


# ---- the window --------------------------------------------------------------------------


def install_window(app: Flask) -> GatewayWindow | None:
    """Build the window when an ingest URL and token are configured; with ``gateway_metrics``
    on, every change of a split opens or closes it (``TrafficService.observers``)."""
    runtime = app.extensions["kong_canary"]

    def route_warnings(upstream: str) -> list[str]:
        gateway: GatewayIngest | None = app.extensions.get(EXTENSION)
        return [] if gateway is None else gateway.metrics.route_warnings(upstream)

    runtime.service.describe_warnings.append(route_warnings)
    ingest = IngestConfig.from_settings(runtime.settings)
    if ingest is None:
        return None

    def prime(upstream: str) -> None:
        gateway = app.extensions.get(EXTENSION) or install(app)
        gateway.metrics.prime(upstream)

    window = GatewayWindow(
        runtime.kong,
        ingest,
        prime=prime,
        live_wait=runtime.settings.gateway_live_wait,
        keep_lock=runtime.service._keep_lock,  # renewal while it waits
        propagation=runtime.service.propagation,  # data planes' config hashes (hybrid, Konnect)
    )
    app.extensions[WINDOW] = window
    if runtime.settings.gateway_metrics:
        # opened (and live) before a canary's first weight write; kept/closed after changes
        runtime.service.preparers.append(window.prepare)
        runtime.service.observers.append(window.observe)
        # a window someone else removed: warned in GET …/split, restored by the sweeper
        check = WindowCheck(window, runtime.service)
        app.extensions[WINDOW_CHECK] = check
        runtime.service.describe_warnings.append(check.warnings)
        if runtime.sweeper is not None:
            runtime.sweeper.also.append(check.sweep)
    return window


def _window_call(upstream: str, role: str) -> tuple[GatewayWindow, ApiToken]:
    caller = authenticate(required_role=role)  # first: without a valid token, only 401
    check_upstream_name(upstream)
    _check_allowed(caller, upstream)
    window: GatewayWindow | None = current_app.extensions.get(WINDOW)
    if window is None:
        raise ApiError(
            409,
            "gateway_metrics_not_configured",
            "no gateway ingest configured: set gateway_ingest_token (one of the API tokens) "
            "and gateway_ingest_url or public_url",
        )
    return window, caller


def _check_allowed(caller: ApiToken, upstream: str) -> None:
    if not caller.allows(upstream):
        raise ApiError(
            403,
            "upstream_not_allowed",
            f"token {caller.name!r} may not act on upstream {upstream!r}",
            field="upstream",
        )


def _kong(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except KongError as exc:
        raise from_kong_error(exc) from exc


def _answer(upstream: str, window: GatewayWindow, plugins: list[dict[str, str]], **extra: Any):  # type: ignore[no-untyped-def]
    body = {
        "upstream": upstream,
        "attached": bool(plugins),
        "endpoint": window.ingest.endpoint,
        "plugins": plugins,
        **extra,
    }
    return jsonify(body)


def _audit(event: str, caller: str, upstream: str, **fields: Any) -> None:
    entry = {"event": event, "token": caller, "upstream": upstream, **fields}
    audit.info(json.dumps(entry, sort_keys=True))


_WINDOW_ABOUT = (
    "Kong's http-log plugin on every Kong service whose host is the upstream, posting to "
    "/v1/kong-log with the gateway ingest token; tagged managed-by=kong-canary. With "
    "gateway_metrics on, the next split change re-opens or closes it."
)
_NOT_CONFIGURED = "gateway_metrics_not_configured (no ingest token/URL)"


def _window_operation(summary: str, role: str, refused: str = _NOT_CONFIGURED) -> Operation:
    """The http-log window by hand. With gateway_metrics on, set/ramp/rollback/promote open
    and close it on their own and report a failure as a warning (the split still applies);
    ``refused``: what its 409 means."""
    return Operation(
        summary,
        description=f"{_WINDOW_ABOUT} Token role: {role}.",
        responses={
            "200": json_response("GatewayMetrics", "the window as it is now"),
            **errors(401, 403, 404, 422, 502, 503),
            "409": json_response("Error", refused),
        },
    )


@bp.get("/upstreams/<upstream>/gateway-metrics")
@documented(_window_operation("Is the window open: our http-log plugins", "read"))
def gateway_metrics_view(upstream: str):  # type: ignore[no-untyped-def]
    window, _ = _window_call(upstream, "read")
    return _answer(upstream, window, _kong(lambda: window.plugins(upstream)))


@bp.post("/upstreams/<upstream>/gateway-metrics")
@documented(
    _window_operation(
        "Open the window: attach http-log",
        "write",
        f"{_NOT_CONFIGURED}; no_service (no Kong service has the upstream as host), "
        "http_log_in_use (another http-log), ingest_token_not_allowed",
    )
)
def gateway_metrics_open(upstream: str):  # type: ignore[no-untyped-def]
    window, caller = _window_call(upstream, "write")
    try:
        entity = current_app.extensions["kong_canary"].kong.upstream(upstream)
    except KongError as exc:
        raise from_kong_error(exc, upstream=upstream) from exc
    # Kong's name, not the URL's spelling (an id in any case): the window, the series it
    # primes and the labels are the name's, so the token's patterns must allow the name too
    _check_allowed(caller, entity.name)
    upstream = CONFIRMED_UPSTREAMS.confirm(entity.name)
    with current_app.extensions["kong_canary"].service.exclusive(upstream):
        plugins = _kong(lambda: window.open(upstream))
    _audit("gateway_metrics_open", caller.name, upstream, plugins=plugins)
    return _answer(upstream, window, plugins)


@bp.delete("/upstreams/<upstream>/gateway-metrics")
@documented(_window_operation("Close the window: remove our http-log", "write"))
def gateway_metrics_close(upstream: str):  # type: ignore[no-untyped-def]
    window, caller = _window_call(upstream, "write")
    with current_app.extensions["kong_canary"].service.exclusive(upstream):
        removed = _kong(lambda: window.close(upstream))
    _audit("gateway_metrics_close", caller.name, upstream, removed=removed)
    return _answer(upstream, window, [], removed=removed)
