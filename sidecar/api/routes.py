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


def register_blueprints(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)


def route_table() -> Flask:
    """The sidecar's routes with nothing behind them (no settings, no Kong): for the document
    when no running app is at hand. Named like the real app, so it has the same routes."""
    app = Flask("sidecar")
    register_blueprints(app)
    return app
