"""Ramps for Spinnaker's "wait for completion" webhook: start (202), poll, cancel.

Orca needs absolute status and cancel URLs, a JSON body with a string status on every
poll, and it calls the cancel URL both when a run is cancelled and when the stage fails.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from sidecar.api import guard
from sidecar.api.auth import require_token
from sidecar.api.operations import errors, json_response, operation, request_body
from sidecar.api.schemas import (
    CANCEL,
    START_RAMP,
    WAIT_PATTERN,
    flag,
    lease_param,
    parse_body,
    parse_split,
    seconds,
    wait_param,
)
from sidecar.api.served import public_base, rollback_wait, served_check, status_url
from sidecar.core.ramp import linear_steps, schedule_steps
from sidecar.core.split import Split, SplitError
from sidecar.core.timestamps import parse_rfc3339
from sidecar.errors import ApiError
from sidecar.ramps import RampService, RampView

bp = Blueprint("ramps", __name__, url_prefix="/v1")
audit = logging.getLogger("kong_canary.audit")


bp.before_request(require_token)

WAIT_QUERY = {
    "name": "wait",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "pattern": WAIT_PATTERN},
    "description": "seconds (0..300) a poll that applies a step waits for Kong's nodes; "
    "statusUrl carries it when the ramp was started with wait",
}


def _ramps() -> RampService:
    return current_app.extensions["kong_canary"].ramps


def _urls(view: RampView, wait: float | None = None) -> dict[str, str]:
    """``wait`` rides on the status URL: the ramp id is the signed schedule, and each poll
    that applies a step needs it."""
    base = public_base()
    query = f"?wait={wait:g}" if wait is not None else ""
    return {
        "statusUrl": f"{base}/v1/ramps/{view.id}{query}",
        "cancelUrl": f"{base}/v1/ramps/{view.id}/cancel",
    }


def _audit(event: str, view: RampView, body: dict[str, Any]) -> None:
    entry = {
        "event": event,
        "token": g.caller.name,
        "upstream": view.upstream,
        "ramp": view.id[-22:],
        "status": view.status,
        "split": view.split.as_percentages() if view.split else None,
        **(body.get("context") or {}),
    }
    audit.info(json.dumps(entry, sort_keys=True))


@bp.post("/upstreams/<upstream>/ramps")
@operation(
    "Start a ramp (Orca: wait for completion, poll statusUrl)",
    request_body=request_body("StartRampRequest", required=True),
    responses={
        "202": json_response("Ramp", "started; statusUrl and cancelUrl are absolute"),
        **errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
    },
)
def start_ramp(upstream: str):  # type: ignore[no-untyped-def]
    body = parse_body(request, START_RAMP)
    guarded = guard.parse_guard(body)  # refused before anything reaches Kong
    service = _ramps()
    try:
        if "schedule" in body:
            splits = [parse_split(s, f"schedule[{i}]") for i, s in enumerate(body["schedule"])]
            steps = schedule_steps(splits, seconds(body, "interval") or 0.0)
        else:
            current = service.traffic.read(upstream).split() or Split.STABLE_ONLY
            steps = linear_steps(
                current,
                parse_split(body["split"], "split"),
                int(body["steps"]),
                seconds(body, "duration") or 0.0,
            )
    except SplitError as exc:
        raise ApiError(422, "invalid_ramp", str(exc), field=exc.field) from None
    start_at = None
    if "start_at" in body:
        try:
            start_at = parse_rfc3339(body["start_at"])
        except ValueError as exc:
            raise ApiError(
                422,
                "invalid_field",
                f"start_at must be an RFC 3339 date-time such as 2026-12-04T23:30:00Z: {exc}",
                field="start_at",
            ) from None
    view = service.start(
        upstream,
        steps,
        start_at=start_at,
        lease=lease_param(body, service.traffic.leases),
        targets=body.get("targets"),
        allow_unequal=flag(body, "allow_unequal"),
        execution_id=(body.get("context") or {}).get("execution_id"),
        wait=seconds(body, "wait"),
    )
    guard.arm(upstream, guarded, ramp=view.id)
    _audit("ramp_started", view, body)
    urls = _urls(view, seconds(body, "wait"))
    return jsonify(view.as_json(urls)), 202, {"Location": urls["statusUrl"]}


def _check_ramp_upstream(ramp_id: str) -> None:
    """The ramp routes carry no upstream in their URL: the token's upstream allow-list is
    applied to the upstream inside the (signed) ramp id."""
    upstream = _ramps().upstream_of(ramp_id)
    if not g.caller.allows(upstream):
        raise ApiError(
            403,
            "upstream_not_allowed",
            f"token {g.caller.name!r} may only touch upstreams matching "
            f"{', '.join(g.caller.upstreams)}",
            field="id",
        )


@bp.get("/ramps/<ramp_id>")
@operation(
    "A ramp's status; moves the upstream on when a step is due",
    query=[WAIT_QUERY],
    responses={
        "200": json_response("Ramp", "status (always a string status)"),
        **errors(401, 403, 404, 409, 422, 502, 503),
    },
)
def ramp_status(ramp_id: str):  # type: ignore[no-untyped-def]
    _check_ramp_upstream(ramp_id)
    wait = wait_param(request.args.get("wait"))
    # A poll moves the ramp on; a read-only token sees the status without writing.
    view = guard.ramp_view(_ramps().status(ramp_id, wait=wait, drive=g.caller.can("write")))
    return jsonify(view.as_json(_urls(view, wait)))


@bp.post("/ramps/<ramp_id>/cancel")
@operation(
    "Cancel a ramp and roll the canary back",
    request_body=request_body("CancelRampRequest", required=False),
    responses={
        "200": json_response("Ramp", "cancelled"),
        **errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
    },
)
def cancel_ramp(ramp_id: str):  # type: ignore[no-untyped-def]
    _check_ramp_upstream(ramp_id)
    body = parse_body(request, CANCEL, optional=True)
    view = _ramps().cancel(ramp_id, wait=rollback_wait(body))
    guard.disarm(view.upstream, ramp=ramp_id)  # the guard it armed ends (its trip stays)
    _audit("ramp_canceled", view, body)
    return jsonify(view.as_json(_urls(view)))


@bp.post("/upstreams/<upstream>/ramps/cancel")
@operation(
    "Cancel the ramp an execution started on this upstream "
    "(Orca's cancelEndpoint; body context.execution_id)",
    request_body=request_body("CancelRampRequest", required=False),
    responses={
        "200": json_response("RampCanceled", "cancelled and rolled back"),
        **errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
    },
)
def cancel_upstream_ramp(upstream: str):  # type: ignore[no-untyped-def]
    """For Orca's cancelEndpoint: cancel the ramp this execution started on the upstream."""
    body = parse_body(request, CANCEL, optional=True)
    execution_id = (body.get("context") or {}).get("execution_id")
    since = served_check().clock()
    # A cancel is a rollback: its answer waits for the nodes, and statusUrl lets a monitored
    # stage wait longer, until canary traffic has stopped everywhere checkable.
    result = _ramps().cancel_on_upstream(upstream, execution_id, wait=rollback_wait(body))
    if result.get("status") == "CANCELED":
        guard.disarm(upstream)  # rolled back: no canary left to guard (its trip stays)
    result["statusUrl"] = status_url(upstream, Split.STABLE_ONLY, since)
    audit.info(
        json.dumps(
            {
                "event": "ramp_canceled",
                "token": g.caller.name,
                "upstream": upstream,
                "split": result["split"],
                **(body.get("context") or {}),
            },
            sort_keys=True,
        )
    )
    return jsonify(result)
