"""Every blueprint the sidecar serves, registered in one place: the app and the OpenAPI
document's route table (``route_table``) are built from the same list, so a blueprint cannot
be served without being documented, nor documented without being served."""

from __future__ import annotations

from flask import Blueprint, Flask

from sidecar.api import (
    admin,
    cohorts,
    guard,
    hashing,
    health,
    kong_log,
    openapi,
    ramps,
    served,
    split,
    status,
)

BLUEPRINTS: tuple[Blueprint, ...] = (
    health.bp,
    openapi.bp,
    split.bp,
    ramps.bp,
    served.bp,
    admin.bp,
    hashing.bp,
    kong_log.bp,
    guard.bp,
    cohorts.bp,
    status.page,  # GET / and its assets
    status.api,  # GET /v1/status
)


def flask_app() -> Flask:
    """The Flask object the sidecar runs in. No static route: Flask would serve the package's
    ``static/`` folder at ``/static/<path>``, the status page without its security headers
    (CSP, no framing) and outside the document; the page's files have their own routes."""
    return Flask("sidecar", static_folder=None)


def register_blueprints(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)


def route_table() -> Flask:
    """The sidecar's routes with nothing behind them (no settings, no Kong): for the document
    when no running app is at hand."""
    app = flask_app()
    register_blueprints(app)
    return app
