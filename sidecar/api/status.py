"""The status page for people (``GET /``) and the JSON it polls (``GET /v1/status``).

The page is static (``sidecar/static/status/``: HTML, one vanilla script, one stylesheet; no
build step, no CDN) and holds no data: the script asks for a read token, keeps it in
``sessionStorage`` only, and polls ``/v1/status`` with it. Every page response carries a CSP
without inline scripts or styles and forbids framing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from sidecar.api.auth import authenticate, check_upstream_name
from sidecar.api.operations import (
    PATH_PARAMETERS,
    errors,
    json_response,
    operation,
    text_response,
)
from sidecar.errors import ApiError
from sidecar.status_board import StatusBoard

STATIC = Path(__file__).resolve().parent.parent / "static" / "status"
EXTENSION = "kong_canary_status"
STATIC_FILES = (  # name, mimetype, what it is
    ("status.js", "text/javascript", "script"),
    ("status.css", "text/css", "stylesheet"),
    ("favicon.svg", "image/svg+xml", "icon"),
)
RAMP_ENDPOINTS = frozenset({"ramps.start_ramp", "ramps.ramp_status"})

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

page = Blueprint("status_page", __name__)
api = Blueprint("status", __name__, url_prefix="/v1")


def install(app: Flask) -> None:
    """The board (the blueprints are registered with the others, ``sidecar.api.routes``);
    learn ramp ids from the ramp endpoints' answers (Kong holds only their fingerprint, the
    schedule is in the id)."""
    runtime = app.extensions["kong_canary"]
    board = StatusBoard(
        runtime.service,
        runtime.ramps,
        gateway_metrics=runtime.settings.gateway_metrics,
        clock=runtime.ramps.clock,
    )
    app.extensions[EXTENSION] = board

    @app.after_request
    def _remember_ramp(response: Response) -> Response:
        if request.endpoint in RAMP_ENDPOINTS and response.status_code in (200, 202):
            body = response.get_json(silent=True) or {}
            if isinstance(body.get("id"), str):
                board.remember_ramp(body["id"])
        return response


@functools.cache
def _asset(name: str) -> bytes:
    """Read once per process: a few kB, and no open file handed to the WSGI server."""
    return (STATIC / name).read_bytes()


def _serve_asset(name: str, mimetype: str) -> Response:
    return Response(_asset(name), mimetype=mimetype, headers={"Cache-Control": "no-store"})


@page.get("/")
@operation(
    "The status page for people (static; its script polls /v1/status)",
    public=True,
    responses={"200": text_response("text/html", "HTML")},
)
def status_page() -> Response:
    return _serve_asset("index.html", "text/html")


def _asset_view(name: str, mimetype: str, what: str) -> Callable[[], Response]:
    described = operation(
        f"The status page's {what}", public=True, responses={"200": text_response(mimetype, what)}
    )
    return described(lambda: _serve_asset(name, mimetype))


# One route per file, so the app serves exactly the paths the OpenAPI document lists.
for _name, _mimetype, _what in STATIC_FILES:
    page.add_url_rule(
        f"/status/{_name}",
        f"asset_{_name.replace('.', '_')}",
        _asset_view(_name, _mimetype, _what),
        methods=["GET"],
    )


@page.after_request
def _page_headers(response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)
    return response


@api.get("/status")
@operation(
    "Managed upstreams (or one) with split history, ramp progress, "
    "lease, per-variant gateway metrics and recent audit events (read token)",
    query=[{"name": "upstream", "in": "query", "required": False, **PATH_PARAMETERS["upstream"]}],
    responses={
        "200": json_response("Status", "what the status page and watch show"),
        **errors(401, 403, 404, 422, 502, 503),
    },
)
def status():  # type: ignore[no-untyped-def]
    """Every managed upstream the token may see (or ``?upstream=`` only), with the page's
    charts' history. Needs a read token."""
    caller = authenticate(required_role="read")
    upstream = request.args.get("upstream")
    if upstream is not None:
        check_upstream_name(upstream)
        if not caller.allows(upstream):
            raise ApiError(
                403,
                "upstream_not_allowed",
                f"token {caller.name!r} may only see upstreams matching "
                f"{', '.join(caller.upstreams)}",
                field="upstream",
            )
    board: StatusBoard = current_app.extensions[EXTENSION]
    return jsonify(board.view(upstream or None, allows=caller.allows))
