"""Ramps for Spinnaker's "wait for completion" webhook: start (202), poll, cancel.

Orca needs absolute status and cancel URLs, a JSON body with a string status on every
poll, and it calls the cancel URL both when a run is cancelled and when the stage fails.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from sidecar.api import guard
from sidecar.api.auth import require_token
from sidecar.api.schemas import (
    CANCEL,
    START_RAMP,
    flag,
    parse_body,
    parse_split,
    seconds,
    wait_param,
)
from sidecar.core.ramp import linear_steps, schedule_steps
from sidecar.core.split import Split, SplitError
from sidecar.errors import ApiError
from sidecar.ramps import RampService, RampView

bp = Blueprint("ramps", __name__, url_prefix="/v1")
audit = logging.getLogger("kong_canary.audit")


bp.before_request(require_token)


def _ramps() -> RampService:
    return current_app.extensions["kong_canary"].ramps


def _urls(view: RampView, wait: float | None = None) -> dict[str, str]:
    """``wait`` rides on the status URL: the ramp id is the signed schedule, and each poll
    that applies a step needs it."""
    base = current_app.extensions["kong_canary"].settings.public_url or request.host_url
    base = base.rstrip("/")
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
            parsed = datetime.fromisoformat(body["start_at"].replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(
                422, "invalid_field", "start_at must be an RFC 3339 date-time", field="start_at"
            ) from None
        if parsed.tzinfo is None:
            raise ApiError(
                422, "invalid_field", "start_at needs a time zone (e.g. Z)", field="start_at"
            )
        start_at = parsed.timestamp()
    view = service.start(
        upstream,
        steps,
        start_at=start_at,
        lease=seconds(body, "lease"),
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
def ramp_status(ramp_id: str):  # type: ignore[no-untyped-def]
    _check_ramp_upstream(ramp_id)
    wait = wait_param(request.args.get("wait"))
    # A poll moves the ramp on; a read-only token sees the status without writing.
    view = guard.ramp_view(_ramps().status(ramp_id, wait=wait, drive=g.caller.can("write")))
    return jsonify(view.as_json(_urls(view, wait)))


@bp.post("/ramps/<ramp_id>/cancel")
def cancel_ramp(ramp_id: str):  # type: ignore[no-untyped-def]
    _check_ramp_upstream(ramp_id)
    body = parse_body(request, CANCEL, optional=True)
    view = _ramps().cancel(ramp_id)
    _audit("ramp_canceled", view, body)
    return jsonify(view.as_json(_urls(view)))


@bp.post("/upstreams/<upstream>/ramps/cancel")
def cancel_upstream_ramp(upstream: str):  # type: ignore[no-untyped-def]
    """For Orca's cancelEndpoint: cancel the ramp this execution started on the upstream."""
    body = parse_body(request, CANCEL, optional=True)
    execution_id = (body.get("context") or {}).get("execution_id")
    result = _ramps().cancel_on_upstream(upstream, execution_id)
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
