"""``/v1/upstreams/{u}/cohorts``: who never sees the canary, who always does (issue 14).

Authorised like the split routes (write token for PUT/DELETE, the token's upstream
scopes) and audited like them: one ``kong_canary.audit`` line per call, whatever the outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from sidecar.api.audit import audit_entry
from sidecar.api.auth import require_token
from sidecar.api.cohorts_schema import CLEAR_COHORTS, SET_COHORTS
from sidecar.api.operations import Operation, documented, errors, json_response, request_body
from sidecar.api.schemas import flag, lease_param, parse_body, seconds
from sidecar.cohorts import CohortService
from sidecar.core.cohorts import CohortError, parse_spec, served_shares
from sidecar.core.refusals import Refusal
from sidecar.errors import ApiError
from sidecar.errors import answer as answer_for
from sidecar.gateway.metrics import REQUESTS

bp = Blueprint("cohorts", __name__, url_prefix="/v1/upstreams")
audit = logging.getLogger("kong_canary.audit")
EXTENSION = "kong_canary_cohorts"

bp.before_request(require_token)


def _cohorts() -> CohortService:
    return current_app.extensions[EXTENSION]


def _cohorts_operation(
    summary: str, answer: str, body: str | None, statuses: tuple[int, ...]
) -> Operation:
    """Cohorts: a post-function per service of the upstream and two shadow upstreams,
    ``{u}--stable`` and ``{u}--canary``; removed by rollback, promote, lease expiry."""
    return Operation(
        summary,
        request_body=None
        if body is None
        else request_body(body, required=body == "SetCohortsRequest"),
        responses={
            "200": json_response(answer, summary),
            **errors(*statuses),
            "409": json_response(
                "Error",
                "refused, Kong unchanged: untrusted_lua_off, post_function_unavailable, "
                "post_function_in_use (a post-function not ours on a service, on one of its "
                "routes or global: Kong runs only the most specific), "
                "cohorts_unsupported (Konnect, DB-less), no_service, shadow_name_taken",
            ),
            "422": json_response(
                "Error", "a field breaks a rule (error.field), or unknown_consumer naming it"
            ),
        },
    )


_CHANGE_STATUSES = (400, 401, 403, 404, 409, 413, 422, 502, 503)


@bp.get("/<upstream>/cohorts")
@documented(
    _cohorts_operation(
        "The cohorts in force, their consumer ids, what Kong runs",
        "CohortsView",
        None,
        (401, 403, 404, 422, 502, 503),
    )
)
def read_cohorts(upstream: str):  # type: ignore[no-untyped-def]
    return jsonify(_cohorts().view(upstream))


@bp.put("/<upstream>/cohorts")
@documented(
    _cohorts_operation(
        "Set the cohorts (idempotent)", "CohortsView", "SetCohortsRequest", _CHANGE_STATUSES
    )
)
def set_cohorts(upstream: str):  # type: ignore[no-untyped-def]
    body = parse_body(request, SET_COHORTS)
    try:
        spec = parse_spec(body)
    except CohortError as exc:
        raise ApiError(422, "invalid_field", exc.message, field=exc.field) from None
    service = _cohorts()
    lease = lease_param(body, service.traffic.leases)
    wait = seconds(body, "wait")
    return _audited(
        "set_cohorts",
        upstream,
        body,
        lambda: service.set(upstream, spec, lease=lease, dry_run=flag(body, "dry_run"), wait=wait),
    )


@bp.delete("/<upstream>/cohorts")
@documented(
    _cohorts_operation(
        "Remove the cohorts: plugins, then shadow upstreams",
        "CohortsCleared",
        "ClearCohortsRequest",
        _CHANGE_STATUSES,
    )
)
def clear_cohorts(upstream: str):  # type: ignore[no-untyped-def]
    body = parse_body(request, CLEAR_COHORTS, optional=True)
    return _audited(
        "clear_cohorts",
        upstream,
        body,
        lambda: _cohorts().clear(upstream, dry_run=flag(body, "dry_run")),
    )


def _audited(
    operation: str, upstream: str, body: dict[str, Any], change: Callable[[], dict[str, Any]]
):  # type: ignore[no-untyped-def]
    entry = audit_entry(operation, body, upstream)
    try:
        answer = change()
    except (ApiError, Refusal) as raised:
        exc = answer_for(raised)
        entry.update(
            result="refused" if exc.status < 500 else "failed", status=exc.status, error=exc.message
        )
        audit.info(json.dumps(entry, sort_keys=True))
        raise
    entry["result"] = "dry_run" if answer.get("dry_run") else "applied"
    for key in ("cohorts", "resolved", "removed"):
        if key in answer:
            entry[key] = answer[key]
    audit.info(json.dumps(entry, sort_keys=True))
    return jsonify(answer)


def cohort_view(upstream: str) -> dict[str, Any]:
    """The ``cohorts`` member of ``GET …/split`` and, with gateway metrics on, ``served``:
    the percent of requests each variant actually served (a cohort moves the canary's real
    share away from the split's), from the gateway metrics' request counts."""
    service: CohortService | None = current_app.extensions.get(EXTENSION)
    summary = service.summary(upstream) if service is not None else None
    out: dict[str, Any] = {"cohorts": summary}
    if summary is not None and current_app.extensions["kong_canary"].settings.gateway_metrics:
        out["served"] = served_shares(served_counts(REQUESTS, upstream))
    return out


def served_counts(counter: Any, upstream: str) -> dict[str, float]:
    """Requests per variant of the upstream so far, from the requests counter's samples."""
    counts: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("upstream") == upstream:
                variant = sample.labels.get("variant", "")
                counts[variant] = counts.get(variant, 0.0) + sample.value
    return counts
