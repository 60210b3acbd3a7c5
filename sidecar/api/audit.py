"""The audit line every change endpoint writes (split, ramps' neighbours, cohorts): one JSON
line on ``kong_canary.audit`` per call, whatever the outcome."""

from __future__ import annotations

from typing import Any

from flask import g


def audit_entry(operation: str, body: dict[str, Any], upstream: str) -> dict[str, Any]:
    """The start of an audit line: what, who, which upstream, the caller's context/reason."""
    entry: dict[str, Any] = {
        "event": operation,
        "token": g.caller.name,
        "upstream": upstream,
        **{k: v for k, v in (body.get("context") or {}).items()},
    }
    if body.get("reason"):
        entry["reason"] = body["reason"]
    return entry
