"""The endpoints Spinnaker's webhook stages call: read, set, roll back and promote a split."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify

from sidecar.api import guard
from sidecar.api.audit import audit_entry
from sidecar.api.auth import require_token
from sidecar.api.cohorts import cohort_view
from sidecar.api.context import this_request
from sidecar.api.operations import change_operation, documented, errors, ok, operation
from sidecar.api.schemas import (
    PROMOTE,
    ROLLBACK,
    SET_SPLIT,
    flag,
    lease_param,
    parse_body,
    parse_split,
    seconds,
)
from sidecar.api.served import completion, rollback_wait, served_check
from sidecar.core.refusals import Refusal
from sidecar.errors import ApiError, answer
from sidecar.logs import audit_message
from sidecar.metrics import CONFIRMED_UPSTREAMS, SPLIT_CHANGE_SERIES, record_split
from sidecar.traffic import ChangeResult, TrafficService

bp = Blueprint("split", __name__, url_prefix="/v1/upstreams")
audit = logging.getLogger("kong_canary.audit")

bp.before_request(require_token)


def _service() -> TrafficService:
    return current_app.extensions["kong_canary"].service


@bp.get("/<upstream>/split")
@operation(
    "Read the current split, targets, health and warnings",
    responses={**ok("SplitView", "the current split"), **errors(401, 403, 404, 422, 502, 503)},
)
def read_split(upstream: str):  # type: ignore[no-untyped-def]
    body = _service().describe(upstream)
    guarded = guard.live_view(upstream)
    if guarded is not None:
        body["guard"] = guarded
    body.update(cohort_view(upstream))
    return jsonify(body)


@bp.put("/<upstream>/split")
@documented(change_operation("Set the split (idempotent)", "SetSplitRequest", required=True))
def set_split(upstream: str):  # type: ignore[no-untyped-def]
    body = parse_body(this_request(), SET_SPLIT)
    split = parse_split(body["split"], "split")
    expect = parse_split(body["expect"], "expect") if "expect" in body else None
    guarded = guard.parse_guard(body)  # refused before anything reaches Kong
    service = _service()
    answer = _changed(
        "set_split",
        body,
        lambda: service.set_split(
            upstream,
            split,
            targets=body.get("targets"),
            expect=expect,
            dry_run=flag(body, "dry_run"),
            force=flag(body, "force"),
            lease=lease_param(body, service.leases),
            wait=seconds(body, "wait"),
        ),
        upstream,
    )
    if not flag(body, "dry_run"):
        guard.arm(upstream, guarded)
    return answer


@bp.post("/<upstream>/rollback")
@documented(
    change_operation("Roll back: stable takes all traffic", "RollbackRequest", required=False)
)
def rollback(upstream: str):  # type: ignore[no-untyped-def]
    body = parse_body(this_request(), ROLLBACK, optional=True)
    if not flag(body, "dry_run"):
        guard.disarm(upstream)  # nothing left to guard (and a guard must not re-trip)
    return _changed(
        "rollback",
        body,
        lambda: _service().rollback(
            upstream,
            remove=flag(body, "remove"),
            dry_run=flag(body, "dry_run"),
            # "rolled back" means traffic has stopped: wait for the nodes unless told not to
            wait=rollback_wait(body),
        ),
        upstream,
    )


@bp.post("/<upstream>/promote")
@documented(
    change_operation(
        "Promote: stable 100%, canary and baseline removed", "PromoteRequest", required=False
    )
)
def promote(upstream: str):  # type: ignore[no-untyped-def]
    body = parse_body(this_request(), PROMOTE, optional=True)
    if not flag(body, "dry_run"):
        guard.disarm(upstream)
    return _changed(
        "promote",
        body,
        lambda: _service().promote(
            upstream,
            dry_run=flag(body, "dry_run"),
            force=flag(body, "force"),
            wait=seconds(body, "wait"),
        ),
        upstream,
    )


def _changed(operation: str, body: dict[str, Any], change, upstream: str):  # type: ignore[no-untyped-def]
    """Run a change, then record it: metrics, and one audit line whatever the outcome."""
    entry = audit_entry(operation, body, upstream)
    since = served_check().clock()
    try:
        result: ChangeResult = change()
    except (ApiError, Refusal) as raised:
        exc = answer(raised)
        entry.update(
            result="refused" if exc.status < 500 else "failed", status=exc.status, error=exc.message
        )
        audit.info(audit_message(entry))
        label = CONFIRMED_UPSTREAMS.label(upstream)  # the URL's text is no label
        SPLIT_CHANGE_SERIES(label, operation, entry["result"]).inc()
        raise
    entry.update(
        result="dry_run" if result.dry_run else "applied",
        before=result.previous.as_percentages() if result.previous else None,
        after=result.split.as_percentages() if result.split else None,
        writes=[w.as_json() for w in result.writes],
        duration_ms=round(result.duration_ms, 3),
    )
    if result.propagation is not None:
        entry["propagation"] = {k: result.propagation[k] for k in ("confirmed", "waited_ms")}
    audit.info(audit_message(entry))
    name = CONFIRMED_UPSTREAMS.confirm(result.upstream)  # Kong's name, whatever the URL said
    SPLIT_CHANGE_SERIES(name, operation, entry["result"]).inc()
    if not result.dry_run:
        record_split(name, entry["after"])
    _strict_propagation(body, result)
    return jsonify({**result.as_json(), **completion(result, since)})


def _strict_propagation(body: dict[str, Any], result: ChangeResult) -> None:
    """``wait_strict``: a change Kong's nodes did not show in time is a 503 (Orca retries;
    the retry is an idempotent re-PUT that waits again). The change itself stays applied."""
    waited = result.propagation
    if waited is None or waited["confirmed"] or not flag(body, "wait_strict"):
        return
    raise ApiError(
        503,
        "propagation_timeout",
        f"the change is applied, but Kong's nodes did not all show it: {waited['message']}",
        details={"propagation": waited, "split": result.as_json()["split"]},
    )
