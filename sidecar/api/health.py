"""Liveness, readiness and metrics: open to the kubelet and Prometheus, no token."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from sidecar.api.operations import json_response, operation, text_response
from sidecar.errors import from_kong_error
from sidecar.kong.errors import KongError
from sidecar.metrics import render

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@operation("Liveness", public=True, responses={"200": json_response("Health", "alive")})
def healthz():  # type: ignore[no-untyped-def]
    """The process answers. Deliberately does not touch Kong: a Kong outage must not make
    the kubelet restart every sidecar."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@operation(
    "Readiness: Kong reachable and credentials accepted",
    public=True,
    responses={
        "200": json_response("Ready", "ready"),
        "503": json_response("Ready", "Kong unreachable or refusing us"),
    },
)
def readyz():  # type: ignore[no-untyped-def]
    """Kong is reachable and accepts our credentials."""
    runtime = current_app.extensions["kong_canary"]
    try:
        info = runtime.kong.ping()
    except KongError as exc:
        error = from_kong_error(exc)
        body = {"status": "unavailable", **error.body()}
        return jsonify(body), 503
    return jsonify(
        {
            "status": "ok",
            "kong": {
                "version": info.version,
                "edition": info.edition,
                "flavour": str(info.flavour),
                "writable": info.writable,
                "embedded": runtime.settings.embedded_kong,
            },
        }
    )


@bp.get("/metrics")
@operation(
    "Prometheus metrics", public=True, responses={"200": text_response("text/plain", "exposition")}
)
def metrics() -> Response:
    data, content_type = render()
    return Response(data, content_type=content_type)
