"""``PUT/GET /v1/upstreams/{u}/guard``: arm the guard on the canary in force, read its view.

The guard (``sidecar.guard``) is fed by ``POST /v1/kong-log`` (one call per batch) and
rolls back through ``TrafficService.rollback`` – the path of ``POST .../rollback``.

The guard is shared by every gunicorn worker and replica through Kong: the arming and the
last trip are upstream tags (``sidecar.core.guard_tags``, written by
``sidecar.guard_store``), so whichever process ingests an upstream's batches guards it,
any one's trip rolls back, and any one answers a ramp's poll FAILED and ``GET …/guard``
with the config and the trip. Each process still judges only the batches it ingests: a
random sample when several share them (``README.md``, Guard, "Workers and replicas").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request

from sidecar.api.auth import require_token
from sidecar.api.operations import errors, json_response, operation, request_body
from sidecar.core.guard_config import GuardConfig
from sidecar.core.ramp_token import short_id
from sidecar.core.split import Split, SplitError
from sidecar.errors import ApiError
from sidecar.gateway.entries import Tally
from sidecar.gateway.metrics import BOUNDS
from sidecar.guard import Guardian
from sidecar.guard_store import KongGuardStore
from sidecar.ramps import CANCELED, FAILED, RampView
from sidecar.traffic import ChangeEvent

bp = Blueprint("guard", __name__, url_prefix="/v1/upstreams")
audit = logging.getLogger("kong_canary.audit")
log = logging.getLogger("kong_canary.guard")
EXTENSION = "kong_canary_guard"

bp.before_request(require_token)


def shared_guardian(
    app: Flask, *, clock: Callable[[], float] = time.monotonic, replica: str | None = None
) -> Guardian:
    """A guardian that rolls back through ``TrafficService.rollback`` (the path of ``POST
    …/rollback``) and shares the guard through the app's Kong; not started."""
    runtime = app.extensions["kong_canary"]

    def rollback(upstream: str, reason: str) -> object:
        return runtime.service.rollback(upstream)

    return Guardian(
        clock=clock,
        rollback=rollback,
        bounds=BOUNDS,
        replica=replica or replica_name(),
        store=KongGuardStore(runtime.service),
    )


def install(app: Flask, guardian: Guardian | None = None) -> Guardian:
    """The process's guardian; tests pass one with a fake clock and rollback."""
    if guardian is None:
        guardian = shared_guardian(app).start()
    app.extensions[EXTENSION] = guardian
    return guardian


def install_disarm(app: Flask) -> None:
    """Every way a canary ends – ``POST …/rollback``, promote, a split back to stable-only,
    the lease sweeper, rollback-all, a ramp's cancel – disarms its guard in Kong: a
    ``TrafficService`` observer, so no path can forget it. Left armed, every process would
    judge the next canary (started without ``guard``) by the old config and roll it back.
    Registered once per app, whether or not this process has a guardian yet (another
    replica may have armed it). After the change reached Kong, under its locks: a failure
    to disarm is a log line and a warning in the answer, never a failed rollback. The
    guard's own trip keeps its arming (tripped: nobody trips again, ``GET …/guard`` shows it).
    """
    runtime = app.extensions["kong_canary"]
    store = KongGuardStore(runtime.service)

    def canary_ended(event: ChangeEvent) -> list[str]:
        if event.split is not None and event.split != Split.STABLE_ONLY:
            return []
        guardian: Guardian | None = app.extensions.get(EXTENSION)
        if guardian is not None and guardian.rolling_back(event.upstream):
            return []
        try:
            store.disarm(event.upstream, held=True)
        except Exception as exc:
            log.warning("guard of %s still armed in Kong", event.upstream, exc_info=exc)
            return [
                f"the guard of {event.upstream} is still armed in Kong ({exc}); "
                "POST …/rollback again to disarm it"
            ]
        if guardian is not None:
            guardian.disarm(event.upstream)
        return []

    runtime.service.observers.append(canary_ended)


def replica_name() -> str:
    """The pod (host name) and the worker in it: what the audit and the trip name."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
    """After a split or ramp that carried a guard took effect: armed in Kong for every
    worker and replica (``ramp``: the ramp's id, kept as its short id)."""
    if config is not None:
        _guardian().arm_shared(upstream, config, ramp=None if ramp is None else short_id(ramp))


def ramp_view(view: RampView) -> RampView:
    """A ramp the guard ended reports FAILED with the trip's figures (Orca shows the
    message), not the CANCELED its rollback's cancel mark alone would give, on whichever
    worker or replica the poll lands (the trip is recorded in Kong before the rollback)."""
    guardian = current_app.extensions.get(EXTENSION)
    if guardian is None or view.status != CANCELED:
        return view
    message = guardian.trip_of_ramp(view.upstream, short_id(view.id))
    return view if message is None else dataclasses.replace(view, status=FAILED, message=message)


def disarm(upstream: str, *, ramp: str | None = None) -> None:
    """After a rollback or promote: no canary left to guard. ``ramp``: a cancelled ramp's
    id, whose guard alone ends (a later change's guard is not the cancel's to end)."""
    guardian = current_app.extensions.get(EXTENSION)
    if guardian is not None:
        guardian.disarm_shared(upstream, ramp=None if ramp is None else short_id(ramp))


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
@operation(
    "Arm (or re-arm, with fresh evidence) the guard on the canary",
    description="Compares the canary with the old version on every "
    "ingested http-log batch and rolls it back on a clear 5xx or P99 "
    "regression. Kept in Kong (upstream tags), so every worker and replica "
    "that ingests batches judges it; any trip rolls back (see README, Guard).",
    request_body=request_body("GuardConfig", required=True),
    responses={
        "200": json_response("GuardView", "the guard as armed"),
        **errors(400, 401, 403, 422),
    },
)
def set_guard(upstream: str):  # type: ignore[no-untyped-def]
    # force: JSON whatever the Content-Type, as every other body (curl -d sends a form type)
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the body must be a JSON object (use {} for defaults)")
    config = parse_guard({"guard": body})
    assert config is not None
    guardian = _guardian()
    guardian.arm_shared(upstream, config)
    audit.info(
        json.dumps(
            {"event": "guard_set", "token": g.caller.name, "upstream": upstream,
             "guard": config.as_json()},
            sort_keys=True,
        )
    )  # fmt: skip
    return jsonify(_view(upstream, guardian))


@bp.get("/<upstream>/guard")
@operation(
    "The guard's live view: figures, tests and distance to a trip",
    responses={
        "200": json_response("GuardView", "armed false when no guard is set"),
        **errors(401, 403, 422),
    },
)
def get_guard(upstream: str):  # type: ignore[no-untyped-def]
    return jsonify(_view(upstream, _guardian()))


def _view(upstream: str, guardian: Guardian) -> dict[str, Any]:
    view = guardian.view(upstream)
    return {"upstream": upstream, "armed": view is not None, **(view or {})}
