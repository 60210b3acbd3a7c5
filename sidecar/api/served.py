"""Status URLs for traffic-moving calls: Orca's monitored stages poll them until Kong's nodes
serve the change (``sidecar.core.served``).

Every set split, rollback, promote and cancel answers ``status`` (SUCCEEDED when it waited and
every checkable node already serves it, else RUNNING) and an absolute ``statusUrl``. The URL
names the split expected and the time window, so any replica can answer it with no state:
``GET /v1/upstreams/{u}/propagation?split=95,2.5,2.5&since=…&until=…``. Orca's webhook stage
polls it (``waitForCompletion``, ``statusUrlResolution: webhookResponse``) every second for a
minute and then every 15 s (``MonitorWebhookTask``), so a propagation longer than one call
may last (Orca's read timeout) still holds the stage until traffic has moved.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import quote

from flask import Blueprint, current_app, jsonify, request

from sidecar.api.auth import require_token
from sidecar.api.operations import errors, json_response, operation
from sidecar.api.schemas import seconds
from sidecar.core.served import RUNNING, SUCCEEDED
from sidecar.core.split import VARIANTS, Split, SplitError
from sidecar.errors import ApiError
from sidecar.served import ServedCheck
from sidecar.traffic import ChangeResult, percentages

bp = Blueprint("served", __name__, url_prefix="/v1/upstreams")
bp.before_request(require_token)

# How long a status URL keeps answering RUNNING before FAILED: beyond any propagation of a
# healthy cluster (5 s polls, pushes), short of Orca's 1 h monitor timeout, so a node that
# never catches up fails the stage with its name and what it shows.
STATUS_WINDOW_S = 600
# A rollback's answer means "traffic has stopped" unless the caller says otherwise: it waits
# this long by default, inside the read timeout Orca's webhook client may be configured with.
ROLLBACK_WAIT_S = 10.0
_SHARE = r"\d{1,3}(\.\d{1,2})?"
SPLIT_PARAM_PATTERN = rf"^{_SHARE},{_SHARE},{_SHARE}$"
EPOCH_PARAM_PATTERN = r"^\d{1,12}$"
_SPLIT_PARAM = re.compile(SPLIT_PARAM_PATTERN)
_EPOCH_PARAM = re.compile(EPOCH_PARAM_PATTERN)
QUERY = [
    {
        "name": "split",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "pattern": SPLIT_PARAM_PATTERN},
        "description": "the split expected: stable,baseline,canary percentages",
    },
    *(
        {
            "name": name,
            "in": "query",
            "required": True,
            "schema": {"type": "string", "pattern": EPOCH_PARAM_PATTERN},
            "description": about,
        }
        for name, about in (
            ("since", "epoch seconds just before the change"),
            ("until", "epoch seconds after which a change not yet served is FAILED"),
        )
    ),
]


def rollback_wait(body: dict[str, Any]) -> float | None:
    """``wait`` of a call that rolls back: ROLLBACK_WAIT_S unless the body says otherwise."""
    return ROLLBACK_WAIT_S if body.get("wait") is None else seconds(body, "wait")


def served_check() -> ServedCheck:
    return current_app.extensions["kong_canary"].ramps.served


def public_base() -> str:
    """Absolute base for URLs handed to Orca (status, cancel, ``Location``): PUBLIC_URL, else
    the address this server listens on, never the request's ``Host``."""
    base = current_app.extensions["kong_canary"].settings.public_url or _listening_url()
    return base.rstrip("/")


def _listening_url() -> str:
    """The address this server listens on, for links when ``public_url`` is not set.

    Never the request's ``Host`` (issue 13 item 12: ``Host: attacker.example`` went into the
    statusUrl, cancelUrl and Location Orca calls next). ``SERVER_NAME``/``SERVER_PORT`` are
    the listening socket's under werkzeug (``serving.py``, ``server_address``) and under
    gunicorn for TCP listeners (``gunicorn/http/wsgi.py`` ``create``; only a unix socket, which
    ``bind`` cannot name, falls back to Host). Plain http: the sidecar itself never serves TLS.
    Start-up refuses a wildcard ``bind`` without ``public_url`` outside the embedded demo.
    """
    environ = request.environ
    host, port = environ["SERVER_NAME"], environ["SERVER_PORT"]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def status_url(upstream: str, split: Split, since: float) -> str:
    shares = split_param(split)
    start = int(since)
    return (
        f"{public_base()}/v1/upstreams/{quote(upstream, safe='')}/propagation"
        f"?split={shares}&since={start}&until={start + STATUS_WINDOW_S}"
    )


@functools.lru_cache(maxsize=256)
def split_param(split: Split) -> str:
    """``split``'s ``stable,baseline,canary`` query value (``95,2.5,2.5``). Three Decimal
    divisions and formats per answer (~5 µs) for what a few splits a pipeline steps through
    always give: kept per split (a frozen value: equal splits give equal text)."""
    return ",".join(_plain(f"{split.percent(v):f}") for v in VARIANTS)


def _plain(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def completion(result: ChangeResult, since: float) -> dict[str, Any]:
    """``status`` and ``statusUrl`` for a change's answer (``since``: just before it)."""
    confirmed = bool(result.propagation and result.propagation.get("confirmed"))
    out: dict[str, Any] = {"status": SUCCEEDED if result.dry_run or confirmed else RUNNING}
    expected = result.previous if result.dry_run else result.split
    if expected is not None:
        out["statusUrl"] = status_url(result.upstream, expected, since)
    return out


def _query_split(raw: str | None) -> Split:
    if raw is None or not _SPLIT_PARAM.fullmatch(raw):
        raise ApiError(
            422,
            "invalid_field",
            "split must be stable,baseline,canary percentages (e.g. 95,2.5,2.5)",
            field="split",
        )
    try:
        return Split.from_percentages(dict(zip(VARIANTS, raw.split(","), strict=True)))
    except SplitError as exc:
        raise ApiError(422, "invalid_field", str(exc), field="split") from None


def _query_epoch(name: str) -> int:
    raw = request.args.get(name)
    if raw is None or not _EPOCH_PARAM.fullmatch(raw):
        raise ApiError(422, "invalid_field", f"{name} must be whole epoch seconds", field=name)
    return int(raw)


@bp.get("/<upstream>/propagation")
@operation(
    "Is a change served by every checkable Kong node (statusUrl of "
    "set split, rollback, promote and cancel; never writes)",
    query=QUERY,
    responses={
        "200": json_response("Served", "status RUNNING, SUCCEEDED or FAILED"),
        **errors(401, 403, 404, 422, 502, 503),
    },
)
def propagation_status(upstream: str):  # type: ignore[no-untyped-def]
    """One look: SUCCEEDED when every checkable node serves ``split``, FAILED when another
    change replaced it or ``until`` passed, else RUNNING. Never writes."""
    expected = _query_split(request.args.get("split"))
    since, until = _query_epoch("since"), _query_epoch("until")
    verdict, state, propagation = served_check().status(
        upstream, expected, since=since, until=until
    )
    return jsonify(
        {
            "upstream": state.upstream.name,
            "status": verdict.status,
            "message": verdict.message,
            "expected": percentages(expected),
            "split": percentages(state.split()),
            "propagation": propagation,
        }
    )
