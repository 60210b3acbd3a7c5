"""``PUT/GET /v1/upstreams/{u}/guard``: arm the guard on the canary in force, read its view.

The guard (``sidecar.guard``) is fed by ``POST /v1/kong-log`` (one call per batch) and
rolls back through ``TrafficService.rollback`` – the path of ``POST .../rollback``.

Scope of this first wiring: the guard lives in the process that armed it, and sees the
batches this process ingests. Several workers or replicas each see a sample of the batches
(detection slows by about the number of processes, ``sidecar.core.guard``); keeping the
armed config in Kong (tags, like leases) so every replica guards is the next step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request

from sidecar.api.auth import require_token
from sidecar.core.guard_config import GuardConfig
from sidecar.core.split import SplitError
from sidecar.errors import ApiError
from sidecar.gateway.entries import Tally
from sidecar.gateway.metrics import BOUNDS
from sidecar.guard import Guardian
from sidecar.ramps import CANCELED, FAILED, RampView

bp = Blueprint("guard", __name__, url_prefix="/v1/upstreams")
audit = logging.getLogger("kong_canary.audit")
EXTENSION = "kong_canary_guard"

bp.before_request(require_token)


def install(app: Flask, guardian: Guardian | None = None) -> Guardian:
    """The process's guardian; tests pass one with a fake clock and rollback."""
    if guardian is None:
        runtime = app.extensions["kong_canary"]

        def rollback(upstream: str, reason: str) -> object:
            return runtime.service.rollback(upstream)

        guardian = Guardian(
            clock=time.monotonic, rollback=rollback, bounds=BOUNDS, replica=socket.gethostname()
        ).start()
    app.extensions[EXTENSION] = guardian
    return guardian


def record(app: Flask, tally: Tally) -> None:
    """The ingest's hook: one call per batch; nothing when no guard is installed."""
    guardian = app.extensions.get(EXTENSION)
    if guardian is not None:
        guardian.record(tally)


def parse_guard(body: dict[str, Any]) -> GuardConfig | None:
    """The ``guard`` of a split or ramp body, checked before anything reaches Kong."""
    if body.get("guard") is None:
        return None
    try:
        return GuardConfig.from_json(body["guard"])
    except SplitError as exc:
        raise ApiError(422, "invalid_guard", exc.rule, field=exc.field) from None


def arm(upstream: str, config: GuardConfig | None, *, ramp: str | None = None) -> None:
    """After a split or ramp that carried a guard took effect."""
    if config is not None:
        _guardian().arm(upstream, config, ramp=ramp)


def ramp_view(view: RampView) -> RampView:
    """A ramp this process's guard ended reports FAILED with the trip's figures (Orca shows
    the message), not the CANCELED its rollback's cancel mark alone would give. Other
    processes, which did not trip, still say CANCELED (the guard is per process for now)."""
    guardian = current_app.extensions.get(EXTENSION)
    if guardian is None or view.status != CANCELED:
        return view
    message = guardian.trip_of_ramp(view.upstream, view.id)
    return view if message is None else dataclasses.replace(view, status=FAILED, message=message)


def disarm(upstream: str) -> None:
    """After a rollback or promote: no canary left to guard."""
    guardian = current_app.extensions.get(EXTENSION)
    if guardian is not None:
        guardian.disarm(upstream)


def live_view(upstream: str) -> dict[str, Any] | None:
    """For ``GET …/split``: the guard's view when this process guards the upstream."""
    guardian = current_app.extensions.get(EXTENSION)
    return (
        None if guardian is None else _view(upstream, guardian) if guardian.view(upstream) else None
    )


def _guardian() -> Guardian:
    guardian = current_app.extensions.get(EXTENSION)
    return guardian if guardian is not None else install(current_app)  # type: ignore[arg-type]


@bp.put("/<upstream>/guard")
def set_guard(upstream: str):  # type: ignore[no-untyped-def]
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the body must be a JSON object (use {} for defaults)")
    config = parse_guard({"guard": body})
    assert config is not None
    guardian = _guardian()
    guardian.arm(upstream, config)
    audit.info(
        json.dumps(
            {"event": "guard_set", "token": g.caller.name, "upstream": upstream,
             "guard": config.as_json()},
            sort_keys=True,
        )
    )  # fmt: skip
    return jsonify(_view(upstream, guardian))


@bp.get("/<upstream>/guard")
def get_guard(upstream: str):  # type: ignore[no-untyped-def]
    return jsonify(_view(upstream, _guardian()))


def _view(upstream: str, guardian: Guardian) -> dict[str, Any]:
    view = guardian.view(upstream)
    return {"upstream": upstream, "armed": view is not None, **(view or {})}
