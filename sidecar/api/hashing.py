"""Sticky canaries: set how Kong hashes requests onto the upstream's targets.

``PUT /v1/upstreams/{u}/hashing`` sets Kong's ``hash_on`` family. A user then stays on
one version while the split is unchanged; the price is precision: ``hash_on`` forces
Kong's consistent-hashing algorithm, so the split becomes the share of Kong's hash ring
each variant owns (``effective_split`` and the warnings say what it is).
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, g, jsonify, request

from sidecar.api.auth import require_token
from sidecar.api.operations import errors, json_response, operation, request_body
from sidecar.api.schemas import CONTEXT, FLAG, REASON, flag, parse_body
from sidecar.errors import ApiError

bp = Blueprint("hashing", __name__, url_prefix="/v1/upstreams")
audit = logging.getLogger("kong_canary.audit")

HASH_ON = ["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]
KONG3_ONLY = {"path", "query_arg", "uri_capture"}
# (?![\s\S]) ends the string in Python and ECMA 262 alike; Python's $ accepts a trailing newline
NAME_PATTERN = r"^[^\s,/]+(?![\s\S])"
NAME = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NAME_PATTERN}
HASHING = {
    "type": "object",
    "required": ["hash_on"],
    "properties": {
        "hash_on": {"enum": HASH_ON},
        "hash_fallback": {"enum": [h for h in HASH_ON if h != "cookie"]},
        "hash_on_header": NAME,
        "hash_fallback_header": NAME,
        "hash_on_cookie": NAME,
        "hash_on_cookie_path": {"type": "string", "pattern": "^/", "maxLength": 1024},
        "hash_on_query_arg": NAME,
        "hash_fallback_query_arg": NAME,
        "hash_on_uri_capture": NAME,
        "hash_fallback_uri_capture": NAME,
        "dry_run": FLAG,
        "reason": REASON,
        "context": CONTEXT,
    },
    "additionalProperties": False,
}
NEEDS = {
    "header": "hash_on_header",
    "cookie": "hash_on_cookie",
    "query_arg": "hash_on_query_arg",
    "uri_capture": "hash_on_uri_capture",
}
FALLBACK_NEEDS = {
    "header": "hash_fallback_header",
    "query_arg": "hash_fallback_query_arg",
    "uri_capture": "hash_fallback_uri_capture",
}


bp.before_request(require_token)


def check_hashing(body: dict, kong_major: int) -> dict:
    """Kong's own rules (``upstreams.lua`` entity checks), refused here with the field
    named so nothing is written: each hash_on kind needs its name, cookie hashing has no
    fallback, ``none`` has no fallback, and header fallback must differ from header."""
    fields = {k: v for k, v in body.items() if k not in ("dry_run", "reason", "context")}
    hash_on = fields["hash_on"]
    fallback = fields.setdefault("hash_fallback", "none")
    for kind, field in (("hash_on", hash_on), ("hash_fallback", fallback)):
        if field in KONG3_ONLY and kong_major < 3:
            raise ApiError(
                422, "unsupported", f"{kind} {field!r} needs Kong 3.0 or later", field=kind
            )
    if hash_on in NEEDS and NEEDS[hash_on] not in fields:
        raise ApiError(
            422,
            "invalid_field",
            f"hash_on {hash_on!r} needs {NEEDS[hash_on]}",
            field=NEEDS[hash_on],
        )
    if fallback in FALLBACK_NEEDS and FALLBACK_NEEDS[fallback] not in fields:
        raise ApiError(
            422,
            "invalid_field",
            f"hash_fallback {fallback!r} needs {FALLBACK_NEEDS[fallback]}",
            field=FALLBACK_NEEDS[fallback],
        )
    if hash_on in ("none", "cookie") and fallback != "none":
        raise ApiError(
            422,
            "invalid_field",
            f"hash_on {hash_on!r} allows no fallback (hash_fallback must be none)",
            field="hash_fallback",
        )
    if hash_on == fallback and hash_on not in ("none", "header", "query_arg", "uri_capture"):
        raise ApiError(
            422, "invalid_field", "hash_fallback must differ from hash_on", field="hash_fallback"
        )
    if (
        hash_on == fallback == "header"
        and fields.get("hash_on_header", "").lower()
        == fields.get("hash_fallback_header", "").lower()
    ):
        raise ApiError(
            422,
            "invalid_field",
            "hash_fallback_header must differ from hash_on_header",
            field="hash_fallback_header",
        )
    return fields


@bp.put("/<upstream>/hashing")
@operation(
    "Sticky canaries: set Kong's hash_on (forces consistent-hashing)",
    request_body=request_body("SetHashingRequest", required=True),
    responses={
        "200": json_response("HashingView", "the upstream after the change"),
        **errors(400, 401, 403, 404, 409, 413, 422, 502, 503),
    },
)
def set_hashing(upstream: str):  # type: ignore[no-untyped-def]
    body = parse_body(request, HASHING)
    runtime = current_app.extensions["kong_canary"]
    version = runtime.kong.info().version
    major = int(version.split(".")[0]) if version[:1].isdigit() else 3
    fields = check_hashing(body, major)
    view = runtime.service.set_hashing(upstream, fields, dry_run=flag(body, "dry_run"))
    if fields["hash_on"] != "none":
        view["warnings"].insert(
            0,
            f"hash_on {fields['hash_on']!r} makes Kong use consistent-hashing: users stay on "
            "one version while the split is unchanged, and a split change remaps only part of "
            "them; the split is the share of the hash ring (see effective_split), coarse for "
            "small shares",
        )
    audit.info(
        json.dumps(
            {
                "event": "set_hashing",
                "token": g.caller.name,
                "upstream": upstream,
                "hashing": fields,
                "dry_run": view["dry_run"],
                **(body.get("context") or {}),
            },
            sort_keys=True,
        )
    )
    return jsonify(view)
