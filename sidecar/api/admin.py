"""Incident tools: admin tokens only."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, g, jsonify

from sidecar.api.auth import authenticate
from sidecar.api.operations import errors, json_response, operation
from sidecar.leases import rollback_all

bp = Blueprint("admin", __name__, url_prefix="/v1")
audit = logging.getLogger("kong_canary.audit")


@bp.before_request
def _authenticate() -> None:
    authenticate(required_role="admin")


@bp.post("/rollback-all")
@operation(
    "Incident: every managed upstream back to stable (admin token)",
    responses={
        "200": json_response("RollbackAll", "all rolled back"),
        "502": json_response("RollbackAll", "some rollbacks failed (see results)"),
        **errors(401, 403, 503),
    },
)
def rollback_everything():  # type: ignore[no-untyped-def]
    """Every upstream this sidecar manages back to stable at once."""
    results = rollback_all(current_app.extensions["kong_canary"].service)
    audit.info(
        json.dumps(
            {"event": "rollback_all", "token": g.caller.name, "results": results},
            sort_keys=True,
            default=str,
        )
    )
    failed = [r for r in results if r["result"] != "ok"]
    return jsonify({"results": results, "failed": len(failed)}), (502 if failed else 200)
